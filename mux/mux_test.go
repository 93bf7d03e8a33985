package mux_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/runlog/runlog/mux"
	"github.com/runlog/runlog/mux/muxtest"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wal"
)

// checkLeaks fails the test if goroutines started during it are still
// running shortly after its cleanups. Call it first, so its cleanup runs
// last.
func checkLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("%d goroutines before the test, %d after:\n%s", before, n, buf)
				return
			}
			time.Sleep(10 * time.Millisecond) // no event to wait for: goroutines end on their own
		}
	})
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func initRun(t *testing.T, c runlogv1.RunlogClient, req *runlogv1.InitRequest) *runlogv1.InitResponse {
	t.Helper()
	resp, err := c.Init(ctxT(t), req)
	if err != nil {
		t.Fatalf("Init(%v): %v", req, err)
	}
	return resp
}

type stream = grpc.BidiStreamingClient[runlogv1.PublishRequest, runlogv1.PublishResponse]

func openStream(t *testing.T, c runlogv1.RunlogClient) stream {
	t.Helper()
	st, err := c.Publish(ctxT(t))
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	t.Cleanup(func() { st.CloseSend() })
	return st
}

// send publishes one batch and waits for its answer.
func send(t *testing.T, st stream, req *runlogv1.PublishRequest) *runlogv1.PublishResponse {
	t.Helper()
	if err := st.Send(req); err != nil {
		t.Fatalf("send batch %d: %v", req.Batch, err)
	}
	resp, err := st.Recv()
	if err != nil {
		t.Fatalf("receive answer to batch %d: %v", req.Batch, err)
	}
	if resp.Batch != req.Batch || resp.RunId != req.RunId {
		t.Fatalf("answer for run %s batch %d, want run %s batch %d", resp.RunId, resp.Batch, req.RunId, req.Batch)
	}
	return resp
}

// readAll reads a run's records through the service.
func readAll(t *testing.T, c runlogv1.RunlogClient, id string) []*runlogv1.Record {
	t.Helper()
	rs, err := c.Read(ctxT(t), &runlogv1.ReadRequest{RunId: id})
	if err != nil {
		t.Fatalf("Read %s: %v", id, err)
	}
	var out []*runlogv1.Record
	for {
		resp, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("Read %s: %v", id, err)
		}
		out = append(out, resp.Records...)
	}
}

func wantCode(t *testing.T, err error, code codes.Code, substr string) {
	t.Helper()
	s, _ := status.FromError(err)
	if s.Code() != code || !strings.Contains(s.Message(), substr) {
		t.Fatalf("error %v, want %s containing %q", err, code, substr)
	}
}

func wantProtoError(t *testing.T, e *runlogv1.Error, code codes.Code, substr string) {
	t.Helper()
	if e == nil {
		t.Fatalf("no error, want %s containing %q", code, substr)
	}
	if codes.Code(e.Code) != code || !strings.Contains(e.Message, substr) {
		t.Fatalf("error %s %q, want %s containing %q", codes.Code(e.Code), e.Message, code, substr)
	}
}

func TestPublishIsDurableWhenAcked(t *testing.T) {
	checkLeaks(t)
	srv := muxtest.Start(t, mux.Options{})
	c := srv.Client
	ir := initRun(t, c, &runlogv1.InitRequest{RunId: "r1", Info: &runlogv1.RunInfo{Project: "p", Name: "n"}, ClientPid: int64(os.Getpid())})
	if ir.ClientId == "" || ir.LastSeq != 1 || ir.LastStep != -1 || ir.AckedClientSeq != 0 || ir.Resumed {
		t.Fatalf("Init = %v", ir)
	}
	if ir.MaxRecordBytes != mux.DefaultMaxRecordBytes {
		t.Fatalf("max_record_bytes = %d", ir.MaxRecordBytes)
	}
	if want := filepath.Join(srv.Root(), "runs", "r1", "wal.bolt"); ir.Path != want {
		t.Fatalf("path = %s, want %s", ir.Path, want)
	}
	st := openStream(t, c)
	for b := range 3 {
		resp := send(t, st, &runlogv1.PublishRequest{
			RunId: "r1", ClientId: ir.ClientId, Batch: uint64(b),
			Records: muxtest.HistoryBatch(t, uint64(b*10+1), int64(b*10), 10, 3),
		})
		if resp.Error != nil || len(resp.Rejections) != 0 {
			t.Fatalf("batch %d: %v", b, resp)
		}
		if resp.AckedClientSeq != uint64(b*10+10) || resp.LastSeq != uint64(1+b*10+10) {
			t.Fatalf("batch %d: acked %d last seq %d", b, resp.AckedClientSeq, resp.LastSeq)
		}
	}
	recs := readAll(t, c, "r1")
	if len(recs) != 31 {
		t.Fatalf("read %d records, want 31", len(recs))
	}
	if info := recs[0].GetRun(); info.GetProject() != "p" || info.GetHost() == "" || info.GetStartTimeUnixNano() == 0 {
		t.Fatalf("first record %v, want the run info with host and start time", recs[0])
	}
	for i, r := range recs[1:] {
		want := muxtest.History(uint64(i+1), int64(i), 3)
		if r.Seq != uint64(i+2) || r.ClientId != ir.ClientId || r.ClientSeq != uint64(i+1) ||
			!proto.Equal(r.GetHistory(), want.GetHistory()) {
			t.Fatalf("record %d = %v, want %v", i+2, r, want)
		}
	}
	fin, err := c.Finish(ctxT(t), &runlogv1.FinishRequest{RunId: "r1", ClientId: ir.ClientId})
	if err != nil || !fin.Closed || fin.Seq != 32 {
		t.Fatalf("Finish = %v, %v; want closed at seq 32", fin, err)
	}

	// After shutdown the log holds exactly what was acknowledged.
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	l, err := wal.Open(ir.Path, wal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.LastSeq() != 32 || !l.Finished() || l.ClientSeq(ir.ClientId) != 30 {
		t.Fatalf("log: last seq %d finished %v client seq %d", l.LastSeq(), l.Finished(), l.ClientSeq(ir.ClientId))
	}
	res, err := l.Verify(wal.VerifyOptions{}, func(p wal.Problem) { t.Errorf("verify: %v", p) })
	if err != nil || res.Records != 32 {
		t.Fatalf("verify: %v, %d records", err, res.Records)
	}
	for _, f := range []string{"service.sock", "service.lock"} {
		if _, err := os.Stat(filepath.Join(srv.Root(), f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after shutdown: %v", f, err)
		}
	}
}

var _ = fmt.Sprintf

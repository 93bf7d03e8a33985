package mux_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/runlog/runlog/mux"
	"github.com/runlog/runlog/mux/muxtest"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/root"
	"github.com/runlog/runlog/wal"
	"github.com/runlog/runlog/wire"
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
	if want := root.Dir(srv.Root()).Log("r1"); ir.Path != want {
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
	for _, f := range []string{root.Dir(srv.Root()).Socket(), root.Dir(srv.Root()).Lock()} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after shutdown: %v", f, err)
		}
	}
}

var _ = fmt.Sprintf

// rawHistory encodes a one-item history record by hand, so a test can send
// what the protobuf encoder refuses to produce (invalid UTF-8).
func rawHistory(clientSeq uint64, step int64, key string) []byte {
	var value []byte
	value = protowire.AppendTag(value, wire.ValueDouble, protowire.Fixed64Type)
	value = protowire.AppendFixed64(value, 0x3ff0000000000000)
	return rawRecord(clientSeq, step, key, value)
}

// rawRecord is rawHistory with an encoded Value.
func rawRecord(clientSeq uint64, step int64, key string, value []byte) []byte {
	var item []byte
	item = protowire.AppendTag(item, wire.ItemKey, protowire.BytesType)
	item = protowire.AppendString(item, key)
	item = protowire.AppendTag(item, wire.ItemValue, protowire.BytesType)
	item = protowire.AppendBytes(item, value)
	var row []byte
	row = protowire.AppendTag(row, wire.HistoryStep, protowire.VarintType)
	row = protowire.AppendVarint(row, uint64(step))
	row = protowire.AppendTag(row, wire.HistoryItems, protowire.BytesType)
	row = protowire.AppendBytes(row, item)
	var rec []byte
	rec = protowire.AppendTag(rec, wire.RecordClientSeq, protowire.VarintType)
	rec = protowire.AppendVarint(rec, clientSeq)
	rec = protowire.AppendTag(rec, wire.RecordHistory, protowire.BytesType)
	rec = protowire.AppendBytes(rec, row)
	return rec
}

func TestBadRecordsAreRefusedInBand(t *testing.T) {
	checkLeaks(t)
	srv := muxtest.Start(t, mux.Options{MaxRecordBytes: 1024})
	c := srv.Client
	ir := initRun(t, c, &runlogv1.InitRequest{RunId: "bad"})
	st := openStream(t, c)

	var (
		seq  uint64 // last client seq sent
		step int64  = -1
		good int    // records expected in the log after the run info
	)
	next := func() *runlogv1.Record {
		seq++
		step++
		return muxtest.History(seq, step, 2)
	}
	history := func(key string, v *runlogv1.Value) *runlogv1.Record {
		seq++
		return &runlogv1.Record{ClientSeq: seq, Payload: &runlogv1.Record_History{History: &runlogv1.HistoryRow{
			Step: step, Items: []*runlogv1.Item{{Key: key, Value: v}}}}}
	}
	one := &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: 1}}
	cases := []struct {
		name string
		bad  func() []byte
		code codes.Code
		msg  string
		seq  bool // the rejection names the record's client_seq
	}{
		{"malformed", func() []byte { return []byte{0xff, 0xff, 0xff} }, codes.InvalidArgument, "not a valid runlog.v1.Record", false},
		{"truncated", func() []byte { b := muxtest.Encode(t, next()); step--; return b[:len(b)-3] }, codes.InvalidArgument, "not a valid runlog.v1.Record", false},
		{"too large", func() []byte {
			seq++
			return muxtest.Encode(t, &runlogv1.Record{ClientSeq: seq, Payload: &runlogv1.Record_Output{
				Output: &runlogv1.ConsoleOutput{Text: strings.Repeat("x", 2000)}}})
		}, codes.InvalidArgument, "exceeds the limit of 1024 (--max-record-bytes)", true},
		{"empty key", func() []byte { return muxtest.Encode(t, history("", one)) }, codes.InvalidArgument, `history key "" is empty`, true},
		{"invalid utf-8 key", func() []byte { seq++; return rawHistory(seq, step, "lo\xffss") }, codes.InvalidArgument, `history key "lo\xffss" is not valid UTF-8`, true},
		{"invalid utf-8 value", func() []byte {
			seq++
			var v []byte
			v = protowire.AppendTag(v, wire.ValueString, protowire.BytesType)
			v = protowire.AppendString(v, "\xfe")
			return rawRecord(seq, step, "k", v)
		}, codes.InvalidArgument, `record field history.items[0].value.string_value "\xfe" is not valid UTF-8`, true},
		{"no value", func() []byte { return muxtest.Encode(t, history("k", nil)) }, codes.InvalidArgument, `history key "k" has no value`, true},
		{"step below floor", func() []byte { seq++; return muxtest.Encode(t, muxtest.History(seq, step-1, 2)) }, codes.FailedPrecondition,
			"is lower than the run's last step", true},
		{"negative step", func() []byte { seq++; return rawHistory(seq, -4, "k") }, codes.InvalidArgument, "history step -4 is negative", true},
		{"exit", func() []byte {
			seq++
			return muxtest.Encode(t, &runlogv1.Record{ClientSeq: seq, Payload: &runlogv1.Record_Exit{Exit: &runlogv1.Exit{}}})
		}, codes.InvalidArgument, "call Finish", true},
		{"no payload", func() []byte { seq++; return muxtest.Encode(t, &runlogv1.Record{ClientSeq: seq}) }, codes.InvalidArgument, "no payload", true},
		{"no client seq", func() []byte { return muxtest.Encode(t, muxtest.History(0, step, 1)) }, codes.InvalidArgument, "no client_seq", false},
		{"two payloads", func() []byte {
			seq++
			a := muxtest.Encode(t, &runlogv1.Record{ClientSeq: seq, Payload: &runlogv1.Record_Rewind{Rewind: &runlogv1.Rewind{Step: 0}}})
			return append(a, muxtest.Encode(t, &runlogv1.Record{Payload: &runlogv1.Record_Alert{Alert: &runlogv1.Alert{Title: "x"}}})...)
		}, codes.InvalidArgument, "two payloads (rewind and alert)", true},
		{"empty config remove", func() []byte {
			seq++
			return muxtest.Encode(t, &runlogv1.Record{ClientSeq: seq, Payload: &runlogv1.Record_Config{Config: &runlogv1.ConfigUpdate{Remove: []string{"a", ""}}}})
		}, codes.InvalidArgument, "config remove key is empty (entry 1)", true},
	}
	batch := uint64(0)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := next()
			bad := tc.bad()
			badSeq := seq
			after := next()
			batch++
			resp := send(t, st, &runlogv1.PublishRequest{RunId: "bad", ClientId: ir.ClientId, Batch: batch,
				Records: [][]byte{muxtest.Encode(t, before), bad, muxtest.Encode(t, after)}})
			good += 2
			if resp.Error != nil {
				t.Fatalf("batch error %v, want a rejection", resp.Error)
			}
			if len(resp.Rejections) != 1 {
				t.Fatalf("rejections %v, want one", resp.Rejections)
			}
			rej := resp.Rejections[0]
			if rej.Index != 1 {
				t.Fatalf("rejection of record %d, want 1", rej.Index)
			}
			if tc.seq && rej.ClientSeq != badSeq {
				t.Fatalf("rejection names client_seq %d, want %d", rej.ClientSeq, badSeq)
			}
			wantProtoError(t, rej.Error, tc.code, tc.msg)
			if resp.AckedClientSeq != after.ClientSeq || resp.LastSeq != uint64(1+good) {
				t.Fatalf("acked %d last seq %d, want %d and %d", resp.AckedClientSeq, resp.LastSeq, after.ClientSeq, 1+good)
			}
		})
	}

	// A rewind lowers the floor: the same step that was refused is accepted.
	seq++
	rewind := muxtest.Encode(t, &runlogv1.Record{ClientSeq: seq, Payload: &runlogv1.Record_Rewind{Rewind: &runlogv1.Rewind{Step: 2}}})
	seq++
	low := muxtest.Encode(t, muxtest.History(seq, 3, 1))
	batch++
	resp := send(t, st, &runlogv1.PublishRequest{RunId: "bad", ClientId: ir.ClientId, Batch: batch, Records: [][]byte{rewind, low}})
	good += 2
	if resp.Error != nil || len(resp.Rejections) != 0 || resp.LastSeq != uint64(1+good) {
		t.Fatalf("rewind then step 3: %v", resp)
	}

	// Batch-level errors: nothing acknowledged, the stream goes on.
	doneClient := initRun(t, c, &runlogv1.InitRequest{RunId: "done"}).ClientId
	if fr, err := c.Finish(ctxT(t), &runlogv1.FinishRequest{RunId: "done", ClientId: doneClient}); err != nil || !fr.Closed {
		t.Fatalf("Finish = %v, %v", fr, err)
	}
	batchCases := []struct {
		name, run, client string
		code              codes.Code
		msg               string
	}{
		{"unknown run", "nope", ir.ClientId, codes.NotFound, "run nope not found"},
		{"invalid run id", "../etc", ir.ClientId, codes.InvalidArgument, `run id "../etc" is not valid`},
		{"finished run", "done", doneClient, codes.FailedPrecondition, "run done is finished"},
		{"not attached", "bad", "stranger", codes.FailedPrecondition, "client stranger is not attached to run bad"},
		{"no client id", "bad", "", codes.InvalidArgument, "client_id is empty"},
	}
	for _, tc := range batchCases {
		t.Run(tc.name, func(t *testing.T) {
			batch++
			resp := send(t, st, &runlogv1.PublishRequest{RunId: tc.run, ClientId: tc.client, Batch: batch,
				Records: [][]byte{muxtest.Encode(t, muxtest.History(seq+1, step+1, 1))}})
			wantProtoError(t, resp.Error, tc.code, tc.msg)
			if resp.AckedClientSeq != 0 || len(resp.Rejections) != 0 {
				t.Fatalf("answer %v acknowledges something", resp)
			}
		})
	}

	// The stream still works, and the log holds exactly the good records.
	batch++
	resp = send(t, st, &runlogv1.PublishRequest{RunId: "bad", ClientId: ir.ClientId, Batch: batch, Records: [][]byte{muxtest.Encode(t, next())}})
	good++
	if resp.Error != nil || len(resp.Rejections) != 0 || resp.AckedClientSeq != seq || resp.LastSeq != uint64(1+good) {
		t.Fatalf("good batch after the bad ones: %v", resp)
	}
	recs := readAll(t, c, "bad")
	if len(recs) != 1+good {
		t.Fatalf("log holds %d records, want %d", len(recs), 1+good)
	}
	for _, r := range recs[1:] {
		if r.GetHistory() == nil && r.GetRewind() == nil {
			t.Fatalf("unexpected record in the log: %v", r)
		}
	}
}

func TestInitResumeModes(t *testing.T) {
	checkLeaks(t)
	srv := muxtest.Start(t, mux.Options{})
	c := srv.Client

	ir := initRun(t, c, &runlogv1.InitRequest{ClientPid: 4321})
	if len(ir.RunId) != 26 || strings.ToLower(ir.RunId) != ir.RunId {
		t.Fatalf("made-up run id %q, want a lower-case ULID", ir.RunId)
	}
	if !strings.Contains(ir.ClientId, "-4321-") {
		t.Fatalf("made-up client id %q, want <host>-<pid>-<random>", ir.ClientId)
	}
	for _, id := range []string{"..", "a/b", "-a", ".hidden", "a b", strings.Repeat("x", 129), "é"} {
		err := initErr(c, &runlogv1.InitRequest{RunId: id})
		wantCode(t, err, codes.InvalidArgument, fmt.Sprintf("run id %q is not valid", id))
	}
	if err := initErr(c, &runlogv1.InitRequest{RunId: "a.b_c-D9"}); err != nil {
		t.Fatalf("valid id refused: %v", err)
	}
	wantCode(t, initErr(c, &runlogv1.InitRequest{RunId: "a.b_c-D9"}), codes.AlreadyExists, "run a.b_c-D9 exists; pass resume=allow to continue it")
	wantCode(t, initErr(c, &runlogv1.InitRequest{RunId: "a.b_c-D9", Resume: runlogv1.ResumeMode_RESUME_MODE_NEVER}), codes.AlreadyExists, "exists")
	wantCode(t, initErr(c, &runlogv1.InitRequest{RunId: "missing", Resume: runlogv1.ResumeMode_RESUME_MODE_MUST}), codes.NotFound, "run missing not found")

	// ALLOW creates, then resumes; a resume with info appends an update.
	a := initRun(t, c, &runlogv1.InitRequest{RunId: "allow", Resume: runlogv1.ResumeMode_RESUME_MODE_ALLOW})
	if a.Resumed {
		t.Fatal("first Init with resume=allow says resumed")
	}
	b := initRun(t, c, &runlogv1.InitRequest{RunId: "allow", Resume: runlogv1.ResumeMode_RESUME_MODE_MUST,
		Info: &runlogv1.RunInfo{Notes: "second rank"}})
	if !b.Resumed || b.LastSeq != 2 || b.ClientId == a.ClientId {
		t.Fatalf("resume = %v", b)
	}
	q, err := c.Query(ctxT(t), &runlogv1.QueryRequest{RunId: "allow"})
	if err != nil || q.State.GetInfo().GetNotes() != "second rank" || q.State.GetInfo().GetHost() == "" {
		t.Fatalf("Query = %v, %v; want the merged run info", q, err)
	}

	// A finished run cannot be resumed, open or closed.
	for _, cl := range []string{a.ClientId, b.ClientId} {
		if _, err := c.Finish(ctxT(t), &runlogv1.FinishRequest{RunId: "allow", ClientId: cl}); err != nil {
			t.Fatal(err)
		}
	}
	wantCode(t, initErr(c, &runlogv1.InitRequest{RunId: "allow", Resume: runlogv1.ResumeMode_RESUME_MODE_ALLOW}), codes.FailedPrecondition, "finished")
}

func initErr(c runlogv1.RunlogClient, req *runlogv1.InitRequest) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Init(ctx, req)
	return err
}

// alivePids is an Options.ProcessAlive the test controls.
type alivePids struct {
	mu   sync.Mutex
	dead map[int]bool
}

func (a *alivePids) alive(pid int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return !a.dead[pid]
}

func (a *alivePids) kill(pid int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.dead == nil {
		a.dead = make(map[int]bool)
	}
	a.dead[pid] = true
}

func TestResendAfterRestartIsNotWrittenTwice(t *testing.T) {
	checkLeaks(t)
	root := t.TempDir()
	// A long grace: the run must survive the restart until the client is back.
	opts := mux.Options{CrashGrace: time.Hour}
	srv := muxtest.StartAt(t, root, opts)
	ir := initRun(t, srv.Client, &runlogv1.InitRequest{RunId: "resend", ClientPid: int64(os.Getpid())})
	st := openStream(t, srv.Client)
	resp := send(t, st, &runlogv1.PublishRequest{RunId: "resend", ClientId: ir.ClientId, Batch: 1,
		Records: muxtest.HistoryBatch(t, 1, 0, 100, 2)})
	if resp.AckedClientSeq != 100 {
		t.Fatalf("acked %d, want 100", resp.AckedClientSeq)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}

	srv = muxtest.StartAt(t, root, opts)
	again := initRun(t, srv.Client, &runlogv1.InitRequest{RunId: "resend", ClientId: ir.ClientId,
		Resume: runlogv1.ResumeMode_RESUME_MODE_MUST, ClientPid: int64(os.Getpid())})
	if !again.Resumed || again.AckedClientSeq != 100 || again.LastSeq != 101 || again.LastStep != 99 {
		t.Fatalf("re-Init = %v, want acked 100, last seq 101, last step 99", again)
	}
	// The client does not know what got through: it resends 51..150.
	st = openStream(t, srv.Client)
	resp = send(t, st, &runlogv1.PublishRequest{RunId: "resend", ClientId: ir.ClientId, Batch: 2,
		Records: muxtest.HistoryBatch(t, 51, 50, 100, 2)})
	if resp.Error != nil || len(resp.Rejections) != 0 || resp.AckedClientSeq != 150 || resp.LastSeq != 151 {
		t.Fatalf("resend: %v", resp)
	}
	// And the same batch again, on another stream: nothing new.
	st2 := openStream(t, srv.Client)
	resp = send(t, st2, &runlogv1.PublishRequest{RunId: "resend", ClientId: ir.ClientId, Batch: 3,
		Records: muxtest.HistoryBatch(t, 51, 50, 100, 2)})
	if resp.Error != nil || resp.AckedClientSeq != 150 || resp.LastSeq != 151 {
		t.Fatalf("second resend: %v", resp)
	}
	recs := readAll(t, srv.Client, "resend")
	for i, r := range recs[1:] {
		if r.ClientSeq != uint64(i+1) || r.GetHistory().GetStep() != int64(i) {
			t.Fatalf("record %d: client seq %d step %d", r.Seq, r.ClientSeq, r.GetHistory().GetStep())
		}
	}
	if len(recs) != 151 {
		t.Fatalf("%d records, want 151", len(recs))
	}
}

func TestFinishWithSeveralClients(t *testing.T) {
	checkLeaks(t)
	srv := muxtest.Start(t, mux.Options{})
	c := srv.Client
	rank0 := initRun(t, c, &runlogv1.InitRequest{RunId: "ddp", ClientId: "rank0"})
	rank1 := initRun(t, c, &runlogv1.InitRequest{RunId: "ddp", ClientId: "rank1", Resume: runlogv1.ResumeMode_RESUME_MODE_ALLOW})
	if rank0.ClientId != "rank0" || rank1.ClientId != "rank1" {
		t.Fatalf("client ids %q %q", rank0.ClientId, rank1.ClientId)
	}
	st := openStream(t, c)
	// Both ranks log with their own client sequences.
	for i, cl := range []string{"rank0", "rank1"} {
		resp := send(t, st, &runlogv1.PublishRequest{RunId: "ddp", ClientId: cl, Batch: uint64(i),
			Records: [][]byte{muxtest.Encode(t, &runlogv1.Record{ClientSeq: 1, Payload: &runlogv1.Record_Output{
				Output: &runlogv1.ConsoleOutput{Text: cl}}})}})
		if resp.Error != nil || resp.AckedClientSeq != 1 {
			t.Fatalf("%s: %v", cl, resp)
		}
	}
	fin, err := c.Finish(ctxT(t), &runlogv1.FinishRequest{RunId: "ddp", ClientId: "rank1",
		Exit: &runlogv1.Exit{Code: 1, Message: "rank 1 failed"}})
	if err != nil || fin.Closed {
		t.Fatalf("first Finish = %v, %v; want closed=false", fin, err)
	}
	// rank0 still logs.
	resp := send(t, st, &runlogv1.PublishRequest{RunId: "ddp", ClientId: "rank0", Batch: 5,
		Records: [][]byte{muxtest.Encode(t, muxtest.History(2, 0, 1))}})
	if resp.Error != nil || resp.AckedClientSeq != 2 {
		t.Fatalf("rank0 after rank1 finished: %v", resp)
	}
	fin, err = c.Finish(ctxT(t), &runlogv1.FinishRequest{RunId: "ddp", ClientId: "rank0"})
	if err != nil || !fin.Closed || fin.Seq != 5 {
		t.Fatalf("last Finish = %v, %v; want closed at seq 5", fin, err)
	}
	recs := readAll(t, c, "ddp")
	exit := recs[len(recs)-1].GetExit()
	if exit.GetReason() != runlogv1.ExitReason_EXIT_REASON_FAILED || exit.GetCode() != 1 || recs[len(recs)-1].Synthesized {
		t.Fatalf("exit record %v, want the failed exit of rank 1 (worst wins)", recs[len(recs)-1])
	}
	// Finish again (a resend): same answer.
	again, err := c.Finish(ctxT(t), &runlogv1.FinishRequest{RunId: "ddp", ClientId: "rank0"})
	if err != nil || !again.Closed || again.Seq != fin.Seq {
		t.Fatalf("repeated Finish = %v, %v", again, err)
	}
	resp = send(t, st, &runlogv1.PublishRequest{RunId: "ddp", ClientId: "rank0", Batch: 6,
		Records: [][]byte{muxtest.Encode(t, muxtest.History(3, 1, 1))}})
	wantProtoError(t, resp.Error, codes.FailedPrecondition, "finished")
	q, err := c.Query(ctxT(t), &runlogv1.QueryRequest{RunId: "ddp"})
	if err != nil || q.State.Status != runlogv1.RunStatus_RUN_STATUS_FAILED {
		t.Fatalf("Query = %v, %v; want status failed", q, err)
	}
}

// TestFinishDetachesVanishedClients: a process resumes a run after the
// previous one crashed. The liveness poll never runs here (an hour), so only
// Finish itself can notice that the crashed client is gone: the run must
// close now, with the finishing client's exit, not stay open for the poll
// and then close as crashed.
func TestFinishDetachesVanishedClients(t *testing.T) {
	checkLeaks(t)
	pids := &alivePids{}
	srv := muxtest.Start(t, mux.Options{CrashGrace: time.Hour, PollInterval: time.Hour, ProcessAlive: pids.alive})
	c := srv.Client

	crashed := initRun(t, c, &runlogv1.InitRequest{RunId: "resumed", ClientPid: 999101})
	st := openStream(t, c)
	send(t, st, &runlogv1.PublishRequest{RunId: "resumed", ClientId: crashed.ClientId, Batch: 1,
		Records: muxtest.HistoryBatch(t, 1, 0, 10, 2)})
	pids.kill(999101)
	again := initRun(t, c, &runlogv1.InitRequest{RunId: "resumed", ClientPid: 999102, Resume: runlogv1.ResumeMode_RESUME_MODE_MUST})
	send(t, st, &runlogv1.PublishRequest{RunId: "resumed", ClientId: again.ClientId, Batch: 2,
		Records: muxtest.HistoryBatch(t, 1, 10, 10, 2)})
	fin, err := c.Finish(ctxT(t), &runlogv1.FinishRequest{RunId: "resumed", ClientId: again.ClientId})
	if err != nil || !fin.Closed || fin.Seq != 22 {
		t.Fatalf("Finish = %v, %v; want closed at seq 22 (the crashed client is gone)", fin, err)
	}
	recs := readAll(t, c, "resumed")
	last := recs[len(recs)-1]
	if last.Seq != 22 || last.Synthesized || last.GetExit().GetReason() != runlogv1.ExitReason_EXIT_REASON_FINISHED || last.ClientId != again.ClientId {
		t.Fatalf("exit record %v, want the finishing client's finished exit", last)
	}

	// A live co-client still keeps the run open; a vanished one does not
	// count, and does not make the exit worse.
	for _, cl := range []struct {
		id  string
		pid int64
	}{{"gone", 999201}, {"live", 999202}, {"done", 999203}} {
		initRun(t, c, &runlogv1.InitRequest{RunId: "ddp", ClientId: cl.id, ClientPid: cl.pid, Resume: runlogv1.ResumeMode_RESUME_MODE_ALLOW})
	}
	pids.kill(999201)
	fin, err = c.Finish(ctxT(t), &runlogv1.FinishRequest{RunId: "ddp", ClientId: "done",
		Exit: &runlogv1.Exit{Reason: runlogv1.ExitReason_EXIT_REASON_PREEMPTED}})
	if err != nil || fin.Closed {
		t.Fatalf("Finish with a live co-client = %v, %v; want closed=false", fin, err)
	}
	fin, err = c.Finish(ctxT(t), &runlogv1.FinishRequest{RunId: "ddp", ClientId: "live"})
	if err != nil || !fin.Closed {
		t.Fatalf("last live Finish = %v, %v; want closed", fin, err)
	}
	recs = readAll(t, c, "ddp")
	if exit := recs[len(recs)-1]; exit.Synthesized || exit.GetExit().GetReason() != runlogv1.ExitReason_EXIT_REASON_PREEMPTED {
		t.Fatalf("exit record %v, want the preempted exit (worst of the finishing clients)", exit)
	}
}

// awaitExit follows a run until its exit record arrives.
func awaitExit(t *testing.T, c runlogv1.RunlogClient, id string) *runlogv1.Record {
	t.Helper()
	rs, err := c.Read(ctxT(t), &runlogv1.ReadRequest{RunId: id, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	var last *runlogv1.Record
	for {
		resp, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("follow %s: %v", id, err)
		}
		last = resp.Records[len(resp.Records)-1]
	}
	if last.GetExit() == nil {
		t.Fatalf("follow of %s ended at %v, not at an exit record", id, last)
	}
	return last
}

func TestCrashGraceSynthesizesExit(t *testing.T) {
	checkLeaks(t)
	pids := &alivePids{}
	opts := mux.Options{CrashGrace: 50 * time.Millisecond, PollInterval: 5 * time.Millisecond, ProcessAlive: pids.alive}
	root := t.TempDir()
	srv := muxtest.StartAt(t, root, opts)
	c := srv.Client

	// A client process that vanishes.
	ir := initRun(t, c, &runlogv1.InitRequest{RunId: "vanish", ClientPid: 999001})
	pids.kill(999001)
	exit := awaitExit(t, c, "vanish")
	if !exit.Synthesized || exit.GetExit().GetReason() != runlogv1.ExitReason_EXIT_REASON_CRASHED ||
		!strings.Contains(exit.GetExit().GetMessage(), ir.ClientId) || !strings.Contains(exit.GetExit().GetMessage(), "999001") {
		t.Fatalf("exit %v, want a synthesized crash naming the client", exit)
	}

	// A client that leaves with Teardown and never finishes.
	ir = initRun(t, c, &runlogv1.InitRequest{RunId: "left"})
	if _, err := c.Teardown(ctxT(t), &runlogv1.TeardownRequest{ClientId: ir.ClientId}); err != nil {
		t.Fatal(err)
	}
	exit = awaitExit(t, c, "left")
	if !exit.Synthesized || !strings.Contains(exit.GetExit().GetMessage(), "Teardown") {
		t.Fatalf("exit %v, want a synthesized crash after Teardown", exit)
	}

	// A run left open by a service that stopped: the next service closes it.
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	slow := opts
	slow.CrashGrace = time.Hour
	srv = muxtest.StartAt(t, root, slow)
	initRun(t, srv.Client, &runlogv1.InitRequest{RunId: "orphan"})
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	srv = muxtest.StartAt(t, root, opts)
	exit = awaitExit(t, srv.Client, "orphan")
	if !exit.Synthesized || !strings.Contains(exit.GetExit().GetMessage(), "service restarted") {
		t.Fatalf("exit %v, want a synthesized crash after the restart", exit)
	}
}

func TestReadFollowsAppends(t *testing.T) {
	checkLeaks(t)
	srv := muxtest.Start(t, mux.Options{})
	c := srv.Client
	ir := initRun(t, c, &runlogv1.InitRequest{RunId: "tail"})
	rs, err := c.Read(ctxT(t), &runlogv1.ReadRequest{RunId: "tail", FromSeq: 2, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	st := openStream(t, c)
	got := 0
	for b := range 5 {
		send(t, st, &runlogv1.PublishRequest{RunId: "tail", ClientId: ir.ClientId, Batch: uint64(b),
			Records: muxtest.HistoryBatch(t, uint64(b*20+1), int64(b*20), 20, 1)})
		// The follower sees each batch after its ack.
		for got < (b+1)*20 {
			resp, err := rs.Recv()
			if err != nil {
				t.Fatalf("follow: %v", err)
			}
			for _, r := range resp.Records {
				if r.Seq != uint64(got+2) {
					t.Fatalf("followed seq %d, want %d", r.Seq, got+2)
				}
				got++
			}
		}
	}
	if _, err := c.Finish(ctxT(t), &runlogv1.FinishRequest{RunId: "tail", ClientId: ir.ClientId}); err != nil {
		t.Fatal(err)
	}
	resp, err := rs.Recv()
	if err != nil || len(resp.Records) != 1 || resp.Records[0].GetExit() == nil {
		t.Fatalf("after Finish: %v, %v; want the exit record", resp, err)
	}
	if _, err := rs.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("follow did not end after the exit record: %v", err)
	}
	// A bounded read of a closed run.
	rs, err = c.Read(ctxT(t), &runlogv1.ReadRequest{RunId: "tail", FromSeq: 10, ToSeq: 12})
	if err != nil {
		t.Fatal(err)
	}
	resp, err = rs.Recv()
	if err != nil || len(resp.Records) != 3 || resp.Records[0].Seq != 10 {
		t.Fatalf("bounded read: %v, %v", resp, err)
	}
}

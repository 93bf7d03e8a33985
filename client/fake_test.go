package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/root"
	"github.com/runlog/runlog/wire"
)

// fake is an in-memory service for fault injection the real one cannot be
// made to produce on demand: held acks, batch errors, rejections by rule.
// Its runs survive restart (the memory stands in for the disk). Dedup and
// acks follow the service contract: a record at or below its client's
// high-water client_seq is a duplicate.
type fake struct {
	runlogv1.UnimplementedRunlogServer

	sock string

	// gate, when not nil, holds every Publish response until it is closed.
	gate chan struct{}
	// batchErr, when set, may fail a whole batch before anything is written.
	batchErr func(req *runlogv1.PublishRequest) *runlogv1.Error
	// reject, when set, refuses single records with the returned message.
	reject func(r *runlogv1.Record) string
	// cheap makes the fake only count records, for benchmarks of the client.
	cheap bool

	// mu protects the fields below.
	mu      sync.Mutex
	runs    map[string]*fakeRun
	batches int
	inits   int
	srv     *grpc.Server
	done    chan struct{}
}

type fakeRun struct {
	records  []*runlogv1.Record
	clients  map[string]uint64
	finished bool
}

// startFake serves a fake on a unix socket in a temporary directory.
func startFake(t *testing.T) *fake {
	t.Helper()
	f := &fake{sock: root.Dir(t.TempDir()).Socket(), runs: make(map[string]*fakeRun)}
	f.start(t)
	t.Cleanup(f.stop)
	return f
}

func (f *fake) start(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("unix", f.sock)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := grpc.NewServer()
	runlogv1.RegisterRunlogServer(srv, f)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	done := make(chan struct{})
	f.mu.Lock()
	f.srv, f.done = srv, done
	f.mu.Unlock()
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
}

// stop kills the server abruptly, as a crash would.
func (f *fake) stop() {
	f.mu.Lock()
	srv, done := f.srv, f.done
	f.srv = nil
	f.mu.Unlock()
	if srv != nil {
		srv.Stop()
		<-done
	}
}

func (f *fake) addr() string { return "unix://" + f.sock }

func (f *fake) Init(ctx context.Context, req *runlogv1.InitRequest) (*runlogv1.InitResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inits++
	id := req.GetRunId()
	if id == "" {
		id = fmt.Sprintf("run%d", len(f.runs)+1)
	}
	r, ok := f.runs[id]
	resume := req.GetResume()
	switch {
	case ok && (resume == ResumeNever || resume == runlogv1.ResumeMode_RESUME_MODE_UNSPECIFIED):
		return nil, status.Errorf(codes.AlreadyExists, "run %s exists", id)
	case !ok && resume == ResumeMust:
		return nil, status.Errorf(codes.NotFound, "run %s does not exist", id)
	case ok && r.finished:
		return nil, status.Errorf(codes.FailedPrecondition, "run %s is finished", id)
	case !ok:
		r = &fakeRun{clients: make(map[string]uint64)}
		f.runs[id] = r
		r.records = append(r.records, &runlogv1.Record{Seq: 1, Payload: &runlogv1.Record_Run{Run: req.GetInfo()}})
	}
	return &runlogv1.InitResponse{
		RunId: id, ClientId: req.GetClientId(), Resumed: ok,
		AckedClientSeq: r.clients[req.GetClientId()], LastSeq: uint64(len(r.records)), LastStep: -1,
	}, nil
}

func (f *fake) Publish(stream runlogv1.Runlog_PublishServer) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if f.gate != nil {
			select {
			case <-f.gate:
			case <-stream.Context().Done():
				return stream.Context().Err()
			}
		}
		if err := stream.Send(f.apply(req)); err != nil {
			return err
		}
	}
}

func (f *fake) apply(req *runlogv1.PublishRequest) *runlogv1.PublishResponse {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches++
	resp := &runlogv1.PublishResponse{RunId: req.GetRunId(), Batch: req.GetBatch()}
	r, ok := f.runs[req.GetRunId()]
	if !ok {
		resp.Error = &runlogv1.Error{Code: int32(codes.NotFound), Message: "no such run"}
		return resp
	}
	if f.batchErr != nil {
		if e := f.batchErr(req); e != nil {
			resp.Error = e
			return resp
		}
	}
	if f.cheap {
		recs := req.GetRecords()
		if len(recs) > 0 {
			r.clients[req.GetClientId()] = peekSeq(recs[len(recs)-1])
		}
		resp.AckedClientSeq = r.clients[req.GetClientId()]
		return resp
	}
	// Like the service: after a failed batch, a batch that skips ahead of
	// the client's high-water mark is refused until the failed one is sent
	// again, so that no record is taken for a duplicate.
	if len(req.GetRecords()) > 0 {
		if first := peekSeq(req.GetRecords()[0]); first > r.clients[req.GetClientId()]+1 {
			resp.Error = &runlogv1.Error{Code: int32(codes.Unavailable), Message: "earlier batch must be resent first"}
			return resp
		}
	}
	for i, b := range req.GetRecords() {
		rec := new(runlogv1.Record)
		if err := proto.Unmarshal(b, rec); err != nil {
			resp.Rejections = append(resp.Rejections, &runlogv1.Rejection{Index: uint32(i),
				Error: &runlogv1.Error{Code: int32(codes.InvalidArgument), Message: err.Error()}})
			continue
		}
		hw := r.clients[rec.GetClientId()]
		if rec.GetClientSeq() <= hw {
			continue // a resend
		}
		if rec.GetClientSeq() != hw+1 {
			panic(fmt.Sprintf("client %s skipped from %d to %d", rec.GetClientId(), hw, rec.GetClientSeq()))
		}
		r.clients[rec.GetClientId()] = rec.GetClientSeq()
		if f.reject != nil {
			if msg := f.reject(rec); msg != "" {
				resp.Rejections = append(resp.Rejections, &runlogv1.Rejection{ClientSeq: rec.GetClientSeq(), Index: uint32(i),
					Error: &runlogv1.Error{Code: int32(codes.InvalidArgument), Message: msg}})
				continue
			}
		}
		rec.Seq = uint64(len(r.records) + 1)
		r.records = append(r.records, rec)
	}
	resp.AckedClientSeq = r.clients[req.GetClientId()]
	resp.LastSeq = uint64(len(r.records))
	return resp
}

func (f *fake) Finish(ctx context.Context, req *runlogv1.FinishRequest) (*runlogv1.FinishResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.runs[req.GetRunId()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no run %s", req.GetRunId())
	}
	if !r.finished {
		r.finished = true
		r.records = append(r.records, &runlogv1.Record{Seq: uint64(len(r.records) + 1), Payload: &runlogv1.Record_Exit{Exit: req.GetExit()}})
	}
	return &runlogv1.FinishResponse{Closed: true, Seq: uint64(len(r.records))}, nil
}

func (f *fake) Teardown(ctx context.Context, req *runlogv1.TeardownRequest) (*runlogv1.TeardownResponse, error) {
	return &runlogv1.TeardownResponse{}, nil
}

// history returns the steps of the run's history rows in log order.
func (f *fake) history(id string) []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var steps []int64
	for _, r := range f.runs[id].records {
		if h := r.GetHistory(); h != nil {
			steps = append(steps, h.GetStep())
		}
	}
	return steps
}

func (f *fake) run(id string) *fakeRun {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.runs[id]
}

// peekSeq reads a record's client_seq without decoding the payload.
func peekSeq(b []byte) uint64 {
	h, _ := wire.ParseHeader(b)
	return h.ClientSeq
}

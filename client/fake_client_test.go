package client

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// These tests run the client against the in-memory fake, for the faults the
// real service cannot be made to produce on demand. client_test.go runs the
// same paths against the real service.

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// connectTo connects to addr without ever starting a service and closes the
// client when the test ends.
func connectTo(t *testing.T, addr string, opts Options) *Client {
	t.Helper()
	opts.Address = addr
	opts.NoStart = true
	if opts.Root == "" {
		opts.Root = t.TempDir()
	}
	c, err := Connect(testCtx(t), opts)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func metrics(step int64) map[string]any {
	return map[string]any{"loss": 1 / float64(step+1), "acc": float64(step) / 1000, "epoch": step / 100}
}

func wantSteps(t *testing.T, got []int64, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("log holds %d history rows, want %d", len(got), n)
	}
	for i, s := range got {
		if s != int64(i) {
			t.Fatalf("row %d has step %d, want %d (duplicate or loss)", i, s, i)
		}
	}
}

func TestFakeFlush(t *testing.T) {
	f := startFake(t)
	c := connectTo(t, f.addr(), Options{BatchRecords: 64})
	ctx := testCtx(t)
	r, err := c.Init(ctx, RunOptions{Project: "p", Config: map[string]any{"lr": 0.1}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 5000
	for i := int64(0); i < n; i++ {
		if err := r.Log(i, metrics(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	wantSteps(t, f.history(r.ID()), n)
	if got := f.run(r.ID()).clients[r.ClientID()]; got != n+1 {
		t.Errorf("service holds client_seq up to %d, want %d (config + rows)", got, n+1)
	}
	st := c.Stats()
	if st.Published != n+1 || st.Acked != n+1 || st.Rejected != 0 {
		t.Errorf("stats %+v", st)
	}
	if st.Batches < n/64 {
		t.Errorf("%d batches for %d records of at most 64: batching is broken", st.Batches, n)
	}
}

func TestFakeBackpressure(t *testing.T) {
	f := startFake(t)
	f.gate = make(chan struct{})
	c := connectTo(t, f.addr(), Options{WindowRecords: 8})
	ctx := testCtx(t)
	r, err := c.Init(ctx, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i < 8; i++ {
		if err := r.Log(i, metrics(i)); err != nil {
			t.Fatal(err)
		}
	}
	// The service holds every ack: the ninth record cannot enter the window.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	err = r.LogContext(short, 8, metrics(8))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("log into a full window: err = %v, want it to block until the deadline", err)
	}
	if st := c.Stats(); st.WindowWaits != 1 || st.Published != 8 {
		t.Fatalf("stats after a blocked call: %+v", st)
	}
	// A blocked call goes through once acks make room.
	blocked := make(chan error, 1)
	go func() { blocked <- r.Log(8, metrics(8)) }()
	close(f.gate)
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	for i := int64(9); i < 100; i++ {
		if err := r.Log(i, metrics(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	wantSteps(t, f.history(r.ID()), 100)
}

func TestFakeRejectionsSurfaced(t *testing.T) {
	f := startFake(t)
	f.reject = func(r *runlogv1.Record) string {
		if h := r.GetHistory(); h != nil && h.GetStep()%10 == 3 {
			return "step ends in 3"
		}
		return ""
	}
	c := connectTo(t, f.addr(), Options{})
	ctx := testCtx(t)
	r, err := c.Init(ctx, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i < 30; i++ {
		if err := r.Log(i, metrics(i)); err != nil {
			t.Fatal(err)
		}
	}
	err = r.Flush(ctx)
	var rej *RejectedError
	if !errors.As(err, &rej) {
		t.Fatalf("flush: err = %v, want a *RejectedError", err)
	}
	if rej.Total != 3 || len(rej.Rejections) != 3 {
		t.Fatalf("rejections %+v", rej)
	}
	for i, want := range []uint64{4, 14, 24} { // client_seq = step + 1
		if got := rej.Rejections[i]; got.ClientSeq != want || got.Code != codes.InvalidArgument || got.Message != "step ends in 3" {
			t.Errorf("rejection %d = %+v, want client_seq %d", i, got, want)
		}
	}
	if !strings.Contains(err.Error(), "rejected 3 record(s)") {
		t.Errorf("message %q", err)
	}
	if got := len(f.history(r.ID())); got != 27 {
		t.Errorf("log holds %d rows, want the 27 accepted", got)
	}
	// Reported once; the run goes on.
	if err := r.Log(30, metrics(30)); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatalf("second flush: %v", err)
	}
	if st := c.Stats(); st.Rejected != 3 {
		t.Errorf("stats.Rejected = %d", st.Rejected)
	}
}

func TestFakeRetryableBatchError(t *testing.T) {
	f := startFake(t)
	var failures atomic.Int32
	f.batchErr = func(req *runlogv1.PublishRequest) *runlogv1.Error {
		if failures.Add(1) <= 3 {
			return &runlogv1.Error{Code: int32(codes.ResourceExhausted), Message: "disk full"}
		}
		return nil
	}
	c := connectTo(t, f.addr(), Options{BatchRecords: 10})
	ctx := testCtx(t)
	r, err := c.Init(ctx, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i < 200; i++ {
		if err := r.Log(i, metrics(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	wantSteps(t, f.history(r.ID()), 200)
	if st := c.Stats(); st.Resent == 0 {
		t.Errorf("no record was sent again after the batch errors: %+v", st)
	}
}

func TestFakeFatalBatchError(t *testing.T) {
	f := startFake(t)
	f.batchErr = func(req *runlogv1.PublishRequest) *runlogv1.Error {
		return &runlogv1.Error{Code: int32(codes.FailedPrecondition), Message: "run is finished"}
	}
	c := connectTo(t, f.addr(), Options{})
	ctx := testCtx(t)
	r, err := c.Init(ctx, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Log(0, metrics(0)); err != nil {
		t.Fatal(err)
	}
	err = r.Flush(ctx)
	if status.Code(errors.Unwrap(errors.Unwrap(err))) != codes.FailedPrecondition || !strings.Contains(err.Error(), "run is finished") {
		t.Fatalf("flush: err = %v, want the FAILED_PRECONDITION", err)
	}
	if err := r.Log(1, metrics(1)); err == nil || !strings.Contains(err.Error(), "run is finished") {
		t.Fatalf("log after a fatal error: err = %v", err)
	}
}

func TestFakeReattachAfterRefusal(t *testing.T) {
	f := startFake(t)
	var refused atomic.Int32
	f.batchErr = func(req *runlogv1.PublishRequest) *runlogv1.Error {
		if refused.Add(1) == 2 {
			return &runlogv1.Error{Code: int32(codes.FailedPrecondition), Message: "client not attached"}
		}
		return nil
	}
	c := connectTo(t, f.addr(), Options{BatchRecords: 10})
	ctx := testCtx(t)
	r, err := c.Init(ctx, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i < 100; i++ {
		if err := r.Log(i, metrics(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	wantSteps(t, f.history(r.ID()), 100)
	f.mu.Lock()
	inits := f.inits
	f.mu.Unlock()
	if inits != 2 {
		t.Errorf("service saw %d Init calls, want 2 (open, re-attach)", inits)
	}
}

func TestFakeReconnect(t *testing.T) {
	f := startFake(t)
	c := connectTo(t, f.addr(), Options{BatchRecords: 50})
	ctx := testCtx(t)
	r, err := c.Init(ctx, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	for i := int64(0); i < n; i++ {
		if i == 1000 || i == 2000 {
			// Crash the service with records in flight, log on while it is
			// down, bring it back on the same socket.
			f.stop()
			for j := i; j < i+100; j++ {
				if err := r.Log(j, metrics(j)); err != nil {
					t.Fatal(err)
				}
			}
			i += 100
			f.start(t)
			if err := r.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.Log(i, metrics(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Finish(ctx, 0); err != nil {
		t.Fatal(err)
	}
	wantSteps(t, f.history(r.ID()), n)
	if st := c.Stats(); st.Reconnects != 2 {
		t.Errorf("stats.Reconnects = %d, want 2", st.Reconnects)
	}
	if rr := f.run(r.ID()); !rr.finished {
		t.Error("run not finished")
	}
}

func TestFakeReconnectGivesUp(t *testing.T) {
	f := startFake(t)
	c := connectTo(t, f.addr(), Options{ReconnectTimeout: 200 * time.Millisecond})
	ctx := testCtx(t)
	r, err := c.Init(ctx, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.stop()
	if err := r.Log(0, metrics(0)); err != nil {
		t.Fatal(err)
	}
	err = r.Flush(ctx)
	if !errors.Is(err, ErrGaveUp) {
		t.Fatalf("flush with no service: err = %v, want ErrGaveUp", err)
	}
	if err := r.Log(1, metrics(1)); !errors.Is(err, ErrGaveUp) {
		t.Fatalf("log after giving up: err = %v", err)
	}
}

func TestNoServiceNoStart(t *testing.T) {
	_, err := Connect(testCtx(t), Options{Root: t.TempDir(), NoStart: true})
	if !errors.Is(err, ErrNoService) {
		t.Fatalf("err = %v, want ErrNoService", err)
	}
}

func TestFakeCloseStopsGoroutines(t *testing.T) {
	f := startFake(t)
	c, err := Connect(testCtx(t), Options{Root: t.TempDir(), Address: f.addr(), NoStart: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	r, err := c.Init(ctx, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i < 100; i++ {
		r.Log(i, metrics(i))
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	wantSteps(t, f.history(r.ID()), 100) // Close flushed
	if err := r.Log(100, metrics(100)); !errors.Is(err, ErrClosed) {
		t.Errorf("log after close: err = %v, want ErrClosed", err)
	}
	checkNoGoroutines(t)
}

// checkNoGoroutines fails if a goroutine of this package (other than the
// test's own) is still running. Goroutines end asynchronously after the
// owner returned, so it polls for a short while.
func checkNoGoroutines(t *testing.T) {
	t.Helper()
	var left []string
	deadline := time.Now().Add(5 * time.Second)
	for {
		left = left[:0]
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "runlog/client.(*Client)") || strings.Contains(g, "runlog/client.(*Run)") ||
				strings.Contains(g, "google.golang.org/grpc.(*ClientConn)") || strings.Contains(g, "grpc/internal/transport.(*http2Client)") {
				left = append(left, g)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutine(s) left after Close:\n%s", len(left), strings.Join(left, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFakeIdleClientReconnectsWhenNeeded(t *testing.T) {
	f := startFake(t)
	c := connectTo(t, f.addr(), Options{})
	ctx := testCtx(t)
	r, err := c.Init(ctx, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Finish(ctx, 0); err != nil {
		t.Fatal(err)
	}
	// No run is open when the service goes away: the client waits for a
	// caller before it reconnects, and the next Init gets a stream.
	f.stop()
	f.start(t)
	r, err = c.Init(ctx, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Log(0, metrics(0)); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	wantSteps(t, f.history(r.ID()), 1)
}

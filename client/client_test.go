package client

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/runlog/runlog/mux"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/root"
	"github.com/runlog/runlog/wal"
)

// service is the real service, in this process, on a unix socket in a
// temporary root.
type service struct {
	root string
	opts mux.Options
	svc  *mux.Service
	stop context.CancelFunc
	done chan error
}

func startService(t *testing.T, opts mux.Options) *service {
	t.Helper()
	s := &service{root: t.TempDir(), opts: opts}
	s.start(t)
	t.Cleanup(func() { s.shutdown(t) })
	return s
}

func (s *service) start(t *testing.T) {
	t.Helper()
	svc, err := mux.Open(s.root, s.opts)
	if err != nil {
		t.Fatalf("open service: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	s.svc, s.stop, s.done = svc, cancel, done
}

// shutdown stops the service the way SIGTERM does and waits for it.
func (s *service) shutdown(t *testing.T) {
	t.Helper()
	if s.stop == nil {
		return
	}
	s.stop()
	if err := <-s.done; err != nil {
		t.Errorf("service run: %v", err)
	}
	s.stop = nil
}

func (s *service) addr() string { return "unix://" + s.svc.UnixPath() }

// readLog returns every record of a run's log; the service must be stopped.
func readLog(t *testing.T, dir, id string) []*runlogv1.Record {
	t.Helper()
	l, err := wal.Open(root.Dir(dir).Log(id), wal.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("open log: %v", err)
	}
	defer l.Close()
	if _, err := l.Verify(wal.VerifyOptions{}, func(p wal.Problem) { t.Errorf("log problem: %v", p) }); err != nil {
		t.Fatal(err)
	}
	var out []*runlogv1.Record
	for from := uint64(1); ; {
		recs, err := l.Read(from, 4096, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return out
		}
		out = append(out, recs...)
		from = recs[len(recs)-1].GetSeq() + 1
	}
}

// historySteps returns the steps of the history rows of client in recs.
func historySteps(recs []*runlogv1.Record, client string) []int64 {
	var steps []int64
	for _, r := range recs {
		if h := r.GetHistory(); h != nil && r.GetClientId() == client {
			steps = append(steps, h.GetStep())
		}
	}
	return steps
}

func TestServiceFlushIsDurable(t *testing.T) {
	s := startService(t, mux.Options{})
	c := connectTo(t, s.addr(), Options{BatchRecords: 100})
	ctx := testCtx(t)
	r, err := c.Init(ctx, RunOptions{Project: "p", Name: "n", Config: map[string]any{"lr": 0.01, "layers": []int{64, 64}}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	for i := int64(0); i < n; i++ {
		err := r.Log(i, map[string]any{"loss": 1 / float64(i+1), "step_i": i, "ok": i%2 == 0, "tag": fmt.Sprint("s", i), "inf": math.Inf(1)})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Output(Stdout, "hello\n"); err != nil {
		t.Fatal(err)
	}
	if err := r.Summary(map[string]any{"best": 0.5}); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Flushed means durable: the service's state already holds it all.
	q, err := c.Query(ctx, r.ID(), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := q.GetState().GetRecords(); got != n+4 { // run info, config, rows, output, summary
		t.Errorf("service state has %d records, want %d", got, n+4)
	}
	if err := r.Finish(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	s.shutdown(t)

	recs := readLog(t, s.root, r.ID())
	if len(recs) != n+5 {
		t.Fatalf("log holds %d records, want %d", len(recs), n+5)
	}
	wantSteps(t, historySteps(recs, r.ClientID()), n)
	row := recs[2+7].GetHistory() // the row at step 7
	got := map[string]*runlogv1.Value{}
	for _, it := range row.GetItems() {
		got[it.GetKey()] = it.GetValue()
	}
	if got["loss"].GetDoubleValue() != 1.0/8 || got["step_i"].GetIntValue() != 7 || got["ok"].GetBoolValue() ||
		got["tag"].GetStringValue() != "s7" || !math.IsInf(got["inf"].GetDoubleValue(), 1) {
		t.Errorf("row at step 7 = %v", row)
	}
	if cfg := recs[1].GetConfig(); cfg == nil || len(cfg.GetSet()) != 2 || string(cfg.GetSet()[0].GetValue().GetJsonValue()) != "[64,64]" {
		t.Errorf("second record is not the config: %v", recs[1])
	}
	if info := recs[0].GetRun(); info.GetProject() != "p" || info.GetName() != "n" {
		t.Errorf("first record %v", recs[0])
	}
	if e := recs[len(recs)-1].GetExit(); e == nil || e.GetReason() != runlogv1.ExitReason_EXIT_REASON_FINISHED {
		t.Errorf("last record %v", recs[len(recs)-1])
	}
}

func TestServiceRejections(t *testing.T) {
	s := startService(t, mux.Options{MaxRecordBytes: 1000})
	c := connectTo(t, s.addr(), Options{})
	ctx := testCtx(t)
	a, err := c.Init(ctx, RunOptions{ID: "ranks"})
	if err != nil {
		t.Fatal(err)
	}
	// A second process attached before the first logged: its own view of
	// the step floor is stale, so only the service can refuse its rows.
	b, err := c.Init(ctx, RunOptions{ID: "ranks", Resume: ResumeAllow})
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i <= 10; i++ {
		if err := a.Log(i, map[string]any{"x": 1.0}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Log(5, map[string]any{"y": 1.0}); err != nil {
		t.Fatal(err)
	}
	if err := b.Log(12, map[string]any{"y": 2.0}); err != nil {
		t.Fatal(err)
	}
	err = b.Flush(ctx)
	var rej *RejectedError
	if !errors.As(err, &rej) {
		t.Fatalf("flush: err = %v, want a *RejectedError", err)
	}
	if rej.Total != 1 || rej.Rejections[0].ClientSeq != 1 || rej.Rejections[0].Code != codes.FailedPrecondition ||
		!strings.Contains(rej.Rejections[0].Message, "history step 5 is lower") {
		t.Errorf("rejections %+v", rej.Rejections)
	}
	// The record the service would refuse for its size fails at the call.
	err = a.Log(20, map[string]any{"text": strings.Repeat("x", 2000)})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "limit of 1000") {
		t.Errorf("oversized record: err = %v", err)
	}
	if err := a.Finish(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Finish(ctx, 0); err != nil {
		t.Fatal(err)
	}
	c.Close()
	s.shutdown(t)
	recs := readLog(t, s.root, "ranks")
	if got := historySteps(recs, b.ClientID()); len(got) != 1 || got[0] != 12 {
		t.Errorf("second client's rows in the log: %v, want [12]", got)
	}
	wantSteps(t, historySteps(recs, a.ClientID()), 11)
}

func TestServiceBackpressure(t *testing.T) {
	s := startService(t, mux.Options{})
	c := connectTo(t, s.addr(), Options{WindowRecords: 4, BatchRecords: 2})
	ctx := testCtx(t)
	r, err := c.Init(ctx, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	for i := int64(0); i < n; i++ {
		if err := r.Log(i, metrics(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Finish(ctx, 0); err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	if st.WindowWaits == 0 {
		t.Errorf("%d records through a window of 4 never waited: %+v", n, st)
	}
	c.Close()
	s.shutdown(t)
	wantSteps(t, historySteps(readLog(t, s.root, r.ID()), r.ClientID()), n)
}

func TestServiceRestartResends(t *testing.T) {
	s := startService(t, mux.Options{})
	c := connectTo(t, s.addr(), Options{BatchRecords: 64})
	ctx := testCtx(t)
	r, err := c.Init(ctx, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 6000
	for i := int64(0); i < n; i++ {
		if i == 2000 || i == 4000 {
			// Records are in flight and more are logged while the service
			// is down; it comes back on the same socket.
			s.shutdown(t)
			for j := i; j < i+200; j++ {
				if err := r.Log(j, metrics(j)); err != nil {
					t.Fatal(err)
				}
			}
			i += 200
			s.start(t)
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
	if st := c.Stats(); st.Reconnects != 2 {
		t.Errorf("stats.Reconnects = %d, want 2", st.Reconnects)
	}
	c.Close()
	s.shutdown(t)
	wantSteps(t, historySteps(readLog(t, s.root, r.ID()), r.ClientID()), n)
}

func TestServiceManyRuns(t *testing.T) {
	s := startService(t, mux.Options{})
	c := connectTo(t, s.addr(), Options{})
	ctx := testCtx(t)
	const runs, n = 8, 2000
	ids := make([]*Run, runs)
	errs := make(chan error, runs)
	for i := range ids {
		r, err := c.Init(ctx, RunOptions{Name: fmt.Sprint("r", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = r
		go func() {
			for j := int64(0); j < n; j++ {
				if err := r.LogFloats(j, []string{"a", "b"}, []float64{float64(j), 1}); err != nil {
					errs <- err
					return
				}
			}
			errs <- r.Finish(ctx, 0)
		}()
	}
	for range ids {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	sums, err := c.ListRuns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != runs {
		t.Errorf("ListRuns: %d runs, want %d", len(sums), runs)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoGoroutines(t)
	s.shutdown(t)
	for _, r := range ids {
		wantSteps(t, historySteps(readLog(t, s.root, r.ID()), r.ClientID()), n)
	}
}

func TestServiceRewindAndTypedCalls(t *testing.T) {
	s := startService(t, mux.Options{})
	c := connectTo(t, s.addr(), Options{})
	ctx := testCtx(t)
	r, err := c.Init(ctx, RunOptions{ID: "rewind"})
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i < 10; i++ {
		if err := r.LogFloats(i, []string{"loss"}, []float64{float64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Log(3, metrics(3)); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "call Rewind") {
		t.Fatalf("step going back: err = %v", err)
	}
	if err := r.Rewind(5); err != nil {
		t.Fatal(err)
	}
	for i := int64(5); i < 8; i++ {
		if err := r.LogFloats(i, []string{"loss"}, []float64{-float64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.LogFloats(9, []string{"a", "b"}, []float64{1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("keys and values of different lengths: err = %v", err)
	}
	if err := r.Publish(ctx, &runlogv1.Record{Payload: &runlogv1.Record_Exit{Exit: &runlogv1.Exit{}}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("publishing an exit: err = %v", err)
	}
	if err := r.Publish(ctx, &runlogv1.Record{ClientSeq: 9, Payload: &runlogv1.Record_Rewind{Rewind: &runlogv1.Rewind{}}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("publishing with a client_seq: err = %v", err)
	}
	if err := r.Publish(ctx, &runlogv1.Record{Payload: &runlogv1.Record_File{File: &runlogv1.FileRef{Path: "model.pt", Size: 10}}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Alert(AlertWarn, "slow", "step time doubled"); err != nil {
		t.Fatal(err)
	}
	if err := r.Output(Stderr, "bad \xff byte\n"); err != nil {
		t.Fatal(err)
	}
	if err := r.Finish(ctx, 2); err != nil {
		t.Fatalf("finish: %v", err)
	}
	if err := r.Log(100, metrics(100)); !errors.Is(err, ErrFinished) {
		t.Errorf("log after finish: err = %v", err)
	}
	if err := r.Finish(ctx, 0); !errors.Is(err, ErrFinished) {
		t.Errorf("second finish: err = %v", err)
	}
	c.Close()
	s.shutdown(t)
	recs := readLog(t, s.root, "rewind")
	steps := historySteps(recs, r.ClientID())
	if fmt.Sprint(steps) != "[0 1 2 3 4 5 6 7 8 9 5 6 7]" {
		t.Errorf("history steps %v", steps)
	}
	last := recs[len(recs)-1].GetExit()
	if last.GetCode() != 2 || last.GetReason() != runlogv1.ExitReason_EXIT_REASON_FAILED {
		t.Errorf("exit %v", last)
	}
	if out := recs[len(recs)-2].GetOutput(); out.GetText() != "bad \uFFFD byte\n" || out.GetStream() != Stderr {
		t.Errorf("output %v", out)
	}
}

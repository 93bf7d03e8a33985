package web_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/store"
	"github.com/runlog/runlog/store/storetest"
	"github.com/runlog/runlog/web"
	"github.com/runlog/runlog/web/webtest"
)

const xss = `<img src=x onerror=alert(1)>`

// fixture is a hub store with runs of every state, one of them named with
// markup, one still running.
type fixture struct {
	st   *store.Bolt
	srv  *httptest.Server
	live *webtest.Writer
}

func newFixture(t testing.TB, opts web.Options) *fixture {
	t.Helper()
	ctx := context.Background()
	st := storetest.Open(t)
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	runs := []webtest.Run{
		{ID: "mnist-baseline", Project: "mnist", Name: "baseline", Group: "sweep-1", Tags: []string{"baseline"}, Rows: 500,
			Config:  map[string]any{"lr": 0.001, "batch_size": 64, "model": []byte(`{"layers":[64,64],"act":"relu"}`)},
			Summary: map[string]any{"best_acc": 0.912, "epochs": 10},
			Console: []string{"epoch 1 loss 2.31", "epoch 2 loss 1.20"}, Stats: 40,
			Exit: &runlogv1.Exit{Reason: runlogv1.ExitReason_EXIT_REASON_FINISHED}},
		{ID: "mnist-wide", Project: "mnist", Name: "wide", Group: "sweep-1", Rows: 500, Speed: 1.6,
			Config:  map[string]any{"lr": 0.003, "batch_size": 64, "model": []byte(`{"layers":[256,256],"act":"relu"}`)},
			Summary: map[string]any{"best_acc": 0.957, "epochs": 10},
			Exit:    &runlogv1.Exit{Reason: runlogv1.ExitReason_EXIT_REASON_FINISHED}},
		{ID: "mnist-nan", Project: "mnist", Name: "high-lr", Group: "sweep-1", Rows: 120, Speed: 3,
			Config:  map[string]any{"lr": 0.5, "batch_size": 64},
			Summary: map[string]any{"best_acc": 0.42},
			Stderr:  []string{"Traceback (most recent call last):", "FloatingPointError: loss is nan"},
			Alerts:  []string{"loss diverged"},
			Exit: &runlogv1.Exit{Code: 1, Reason: runlogv1.ExitReason_EXIT_REASON_FAILED,
				Message: "Traceback (most recent call last):\n  File \"train.py\", line 42, in <module>\n    loss.backward()\nFloatingPointError: loss is nan"}},
		{ID: "cifar-resnet", Project: "cifar", Name: "resnet18", Tags: []string{"gpu"}, Rows: 300,
			Config: map[string]any{"lr": 0.1}, Summary: map[string]any{"best_acc": 0.81},
			Exit: &runlogv1.Exit{Code: -9, Reason: runlogv1.ExitReason_EXIT_REASON_CRASHED, Message: "SIGKILL"}},
		{ID: "cifar-vit", Project: "cifar", Name: "vit-small", Rows: 200,
			Config: map[string]any{"lr": 0.0003}, Summary: map[string]any{"best_acc": 0.77},
			Exit: &runlogv1.Exit{Code: 143, Reason: runlogv1.ExitReason_EXIT_REASON_PREEMPTED}},
		{ID: "cifar-killed", Project: "cifar", Name: "stopped", Rows: 50,
			Config: map[string]any{"lr": 0.01},
			Exit:   &runlogv1.Exit{Code: 143, Reason: runlogv1.ExitReason_EXIT_REASON_KILLED}},
		{ID: "xss", Project: "mnist", Name: xss, Tags: []string{xss}, Rows: 10,
			Config:  map[string]any{xss: xss},
			Console: []string{xss},
			Exit:    &runlogv1.Exit{Reason: runlogv1.ExitReason_EXIT_REASON_FINISHED}},
	}
	for i, r := range runs {
		r.Start = start.Add(time.Duration(i) * time.Hour)
		if _, err := webtest.Write(ctx, st, r); err != nil {
			t.Fatal(err)
		}
	}
	live, err := webtest.Write(ctx, st, webtest.Run{ID: "mnist-live", Project: "mnist", Name: "live", Rows: 50,
		Config: map[string]any{"lr": 0.001}, Start: start.Add(10 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if opts.Title == "" {
		opts.Title = "hub"
	}
	srv := httptest.NewServer(web.New(web.NewHubSource(st), opts))
	t.Cleanup(srv.Close)
	return &fixture{st: st, srv: srv, live: live}
}

// grow logs n more rows into the running run.
func (f *fixture) grow(t testing.TB, from int64, n int) {
	t.Helper()
	f.live.Rows(from, n, 3)
	if err := f.live.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

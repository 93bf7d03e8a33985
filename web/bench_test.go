package web_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/root"
	"github.com/runlog/runlog/store/storetest"
	"github.com/runlog/runlog/wal"
	"github.com/runlog/runlog/web"
	"github.com/runlog/runlog/web/webtest"
)

// bigRun is a hub store holding one run of 1,000,000 history rows of 10
// keys, served by the UI.
func bigRun(b *testing.B) *httptest.Server {
	b.Helper()
	st := storetest.Open(b)
	w := webtest.NewWriter(st, "big", time.Time{})
	w.Add(&runlogv1.Record{Payload: &runlogv1.Record_Run{Run: &runlogv1.RunInfo{Project: "bench", Name: "big"}}})
	ctx := context.Background()
	for from := int64(0); from < 1_000_000; from += 50_000 {
		w.Rows(from, 50_000, 10)
		if err := w.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
	srv := httptest.NewServer(web.New(web.NewHubSource(st), web.Options{}))
	b.Cleanup(srv.Close)
	return srv
}

func get(b *testing.B, url string) {
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("GET %s: %s", url, resp.Status)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkChartHub1M: the run page's chart data, every key, of a run of a
// million rows, over HTTP; and a zoom into 1% of it.
func BenchmarkChartHub1M(b *testing.B) {
	srv := bigRun(b)
	b.Run("all-keys", func(b *testing.B) {
		for b.Loop() {
			get(b, srv.URL+"/api/runs/big/chart?points=600")
		}
	})
	b.Run("zoom-1pct", func(b *testing.B) {
		for b.Loop() {
			get(b, srv.URL+"/api/runs/big/chart?points=600&min=500000&max=509999")
		}
	})
}

// BenchmarkRunsTable10k: the runs table API over 10,000 runs, sorted by a
// summary key. "cold" is the first call of a server; "warm" every later one.
func BenchmarkRunsTable10k(b *testing.B) {
	st := storetest.Open(b)
	ctx := context.Background()
	for i := 0; i < 10_000; i++ {
		_, err := webtest.Write(ctx, st, webtest.Run{
			ID: fmt.Sprintf("run-%05d", i), Project: fmt.Sprintf("p%d", i%5), Name: fmt.Sprintf("trial %d", i),
			Config:  map[string]any{"lr": float64(i%100) / 1000, "batch": 64},
			Summary: map[string]any{"acc": float64((i*7919)%10000) / 10000, "loss": 1.0},
			Exit:    &runlogv1.Exit{Reason: runlogv1.ExitReason_EXIT_REASON_FINISHED},
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	const q = "/api/runs?sort=summary.acc&desc=1&limit=100&cols=summary.acc,config.lr"
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			srv := httptest.NewServer(web.New(web.NewHubSource(st), web.Options{}))
			get(b, srv.URL+q)
			srv.Close()
		}
	})
	b.Run("warm", func(b *testing.B) {
		srv := httptest.NewServer(web.New(web.NewHubSource(st), web.Options{}))
		defer srv.Close()
		get(b, srv.URL+q)
		for b.Loop() {
			get(b, srv.URL+q)
		}
	})
}

// BenchmarkBrowserRunPage1M: open the run page of a million-row run in
// Chromium until its charts are drawn; reports the page's own timing
// (performance mark "runlog-ready", from navigation start) as ms/page.
func BenchmarkBrowserRunPage1M(b *testing.B) {
	srv := bigRun(b)
	ctx := browser(b)
	var total float64
	for b.Loop() {
		open(b, ctx, srv.URL+"/run/big")
		ms := eval[float64](b, ctx, `performance.getEntriesByName("runlog-ready")[0].startTime`)
		if n := eval[int](b, ctx, `document.querySelectorAll("#charts .chart canvas").length`); n != 10 {
			b.Fatalf("%d charts drawn, want 10", n)
		}
		total += ms
		chromedp.Run(ctx, chromedp.Navigate("about:blank"))
	}
	b.ReportMetric(total/float64(b.N), "ms/page")
}

// logAppender appends generated records to one open log.
type logAppender struct{ l *wal.Log }

func (a logAppender) Append(_ context.Context, _ string, records [][]byte) (uint64, error) {
	recs := make([]*runlogv1.Record, len(records))
	for i, data := range records {
		recs[i] = new(runlogv1.Record)
		if err := proto.Unmarshal(data, recs[i]); err != nil {
			return 0, err
		}
		recs[i].Seq, recs[i].Id, recs[i].TimeUnixNano = 0, nil, 0
	}
	return 0, a.l.Append(recs)
}

// bigLocalRun is a local root holding one finished run of 1,000,000
// history rows of 10 keys in its file, written a while ago.
func bigLocalRun(b *testing.B) root.Dir {
	b.Helper()
	d := root.Dir(b.TempDir())
	l, err := wal.Open(d.Log("big"), wal.Options{})
	if err != nil {
		b.Fatal(err)
	}
	w := webtest.NewWriter(logAppender{l}, "big", time.Time{})
	w.Add(&runlogv1.Record{Payload: &runlogv1.Record_Run{Run: &runlogv1.RunInfo{Project: "bench", Name: "big"}}})
	ctx := context.Background()
	for from := int64(0); from < 1_000_000; from += 50_000 {
		w.Rows(from, 50_000, 10)
		if err := w.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
	w.Add(&runlogv1.Record{Payload: &runlogv1.Record_Exit{Exit: &runlogv1.Exit{Reason: runlogv1.ExitReason_EXIT_REASON_FINISHED}}})
	if err := w.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	// A finished run's file is older than the source's settle time, so
	// an unchanged file is answered without opening it.
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(d.Log("big"), old, old); err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkChartLocal1M: the run page's chart data, every key, of a local
// run of a million rows in its file, over HTTP. "first" is a fresh source's
// first chart (it reads the run once into tiers); "all-keys" and
// "zoom-1pct" are every later one.
func BenchmarkChartLocal1M(b *testing.B) {
	d := bigLocalRun(b)
	const all = "/api/runs/big/chart?points=600"
	b.Run("first", func(b *testing.B) {
		for b.Loop() {
			srv := httptest.NewServer(web.New(web.NewLocalSource(d, web.LocalOptions{}), web.Options{}))
			get(b, srv.URL+all)
			srv.Close()
		}
	})
	src := web.NewLocalSource(d, web.LocalOptions{})
	srv := httptest.NewServer(web.New(src, web.Options{}))
	defer srv.Close()
	get(b, srv.URL+all)
	b.Run("all-keys", func(b *testing.B) {
		for b.Loop() {
			get(b, srv.URL+all)
		}
	})
	b.Run("zoom-1pct", func(b *testing.B) {
		for b.Loop() {
			get(b, srv.URL+"/api/runs/big/chart?points=600&min=500000&max=509999")
		}
	})
	_, bytes := src.Cached()
	b.ReportMetric(float64(bytes)/(1<<20), "cacheMiB")
}

package web_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/runlog/runlog/web"
)

// browser starts a headless Chromium for the test. Without one the test
// skips, and fails under CI=true.
func browser(t testing.TB) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed (scripts/chromium.sh installs it)")
		}
		t.Skip("chromium is not installed; scripts/chromium.sh installs it")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.WindowSize(1440, 1000),
		chromedp.Flag("headless", "new"),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("force-device-scale-factor", "1"),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 5*time.Minute)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// open navigates and waits for the page to finish its first render.
func open(t testing.TB, ctx context.Context, url string) {
	t.Helper()
	if err := chromedp.Run(ctx, chromedp.Navigate(url), chromedp.WaitVisible(`body[data-ready="1"]`)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
}

func eval[T any](t testing.TB, ctx context.Context, js string) T {
	t.Helper()
	var v T
	if err := chromedp.Run(ctx, chromedp.Evaluate(js, &v)); err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// screenshot saves the page as name.png in $RUNLOG_SCREENSHOTS (docs/img
// for the README) or the test's temporary directory.
func screenshot(t testing.TB, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("RUNLOG_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	var png []byte
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&png, 100)); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// watchDialogs counts JavaScript dialogs (an alert() an injection would
// open).
func watchDialogs(ctx context.Context) *atomic.Int32 {
	var n atomic.Int32
	chromedp.ListenTarget(ctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			n.Add(1)
			go chromedp.Run(ctx, page.HandleJavaScriptDialog(true))
		}
	})
	return &n
}

func TestBrowserRunsTable(t *testing.T) {
	f := newFixture(t, web.Options{})
	ctx := browser(t)
	open(t, ctx, f.srv.URL+"/")
	if n := eval[int](t, ctx, `document.querySelectorAll("#runs tbody tr").length`); n != 8 {
		t.Fatalf("%d rows, want 8", n)
	}
	// Add the summary column and sort by it, best first.
	err := chromedp.Run(ctx,
		chromedp.SetValue("#addcol", "summary.best_acc", chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector("#addcol").dispatchEvent(new Event("change"))`, nil),
		chromedp.WaitVisible(`th[data-col="summary.best_acc"]`),
		chromedp.Click(`th[data-col="summary.best_acc"] .colchip span`),
		chromedp.WaitVisible(`th.sorted[data-col="summary.best_acc"]`),
	)
	if err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, `#runs tbody tr:first-child td.name a`, "wide")
	firstVals := eval[[]string](t, ctx, `[...document.querySelectorAll('#runs tbody td[data-col="summary.best_acc"]')].slice(0,3).map(e => e.textContent)`)
	if strings.Join(firstVals, " ") != "0.957 0.912 0.81" {
		t.Fatalf("best_acc column, sorted: %v", firstVals)
	}
	states := eval[[]string](t, ctx, `[...document.querySelectorAll("#runs .state")].map(e => e.dataset.state + ":" + getComputedStyle(e, "::before").backgroundColor)`)
	seen := map[string]string{}
	for _, s := range states {
		k, v, _ := strings.Cut(s, ":")
		seen[k] = v
	}
	if len(seen) != 6 || seen["failed"] == seen["finished"] {
		t.Fatalf("state colours: %v", seen)
	}
	screenshot(t, ctx, "runs")
}

func waitText(t testing.TB, ctx context.Context, sel, want string) {
	t.Helper()
	var got string
	err := chromedp.Run(ctx, chromedp.Poll(`(() => { const e = document.querySelector(`+jsString(sel)+`); return e && e.textContent === `+jsString(want)+`; })()`, nil, chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil {
		chromedp.Run(ctx, chromedp.Text(sel, &got, chromedp.ByQuery))
		t.Fatalf("%s: text %q, want %q: %v", sel, got, want, err)
	}
}

func jsString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

func TestBrowserRunPage(t *testing.T) {
	f := newFixture(t, web.Options{})
	ctx := browser(t)
	open(t, ctx, f.srv.URL+"/run/mnist-baseline")
	keys := eval[[]string](t, ctx, `[...document.querySelectorAll("#charts .chart")].map(e => e.dataset.key)`)
	if strings.Join(keys, ",") != "train/acc,train/loss,val/loss" {
		t.Fatalf("charts %v, want one per history key", keys)
	}
	groups := eval[[]string](t, ctx, `[...document.querySelectorAll("#charts .group-title")].map(e => e.textContent)`)
	if strings.Join(groups, ",") != "train,val" {
		t.Fatalf("groups %v", groups)
	}
	// Every row in range, read back from the chart's data.
	n := eval[[]int](t, ctx, `[...document.querySelectorAll("#charts .chart")].map(e => e._u.data[1].length)`)
	for i, c := range n {
		if c != 500 {
			t.Fatalf("chart %s has %d points, want 500", keys[i], c)
		}
	}
	last := eval[float64](t, ctx, `(() => { const u = document.querySelector('.chart[data-key="train/acc"]')._u; return u.data[0][u.data[0].length-1]; })()`)
	if last != 499 {
		t.Fatalf("last step %v", last)
	}
	screenshot(t, ctx, "run")
	// Overview: the tables and the exit.
	err := chromedp.Run(ctx, chromedp.Click(`.tabs button[data-tab="overview"]`), chromedp.WaitVisible(`#config`))
	if err != nil {
		t.Fatal(err)
	}
	cfg := eval[[]string](t, ctx, `[...document.querySelectorAll("#config tbody td:first-child")].map(e => e.textContent)`)
	if strings.Join(cfg, ",") != "batch_size,lr,model" {
		t.Fatalf("config keys %v", cfg)
	}
	// Audit: the records and verify.
	err = chromedp.Run(ctx, chromedp.Click(`.tabs button[data-tab="audit"]`), chromedp.WaitVisible(`#verify .ok`))
	if err != nil {
		t.Fatal(err)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll("#records tbody tr").length`); n != 100 {
		t.Fatalf("audit page shows %d records, want 100", n)
	}
	// A failed run shows its traceback; its stderr is marked.
	open(t, ctx, f.srv.URL+"/run/mnist-nan")
	err = chromedp.Run(ctx, chromedp.Click(`.tabs button[data-tab="overview"]`), chromedp.WaitVisible(`#traceback`))
	if err != nil {
		t.Fatal(err)
	}
	if tb := eval[string](t, ctx, `document.querySelector("#traceback").textContent`); !strings.Contains(tb, "FloatingPointError: loss is nan") {
		t.Fatalf("traceback %q", tb)
	}
	chromedp.Run(ctx, chromedp.Click(`.tabs button[data-tab="console"]`), chromedp.WaitVisible(`#console[data-loaded="1"]`))
	if n := eval[int](t, ctx, `document.querySelectorAll("#console .line.stderr").length`); n != 2 {
		t.Fatalf("%d stderr lines, want 2", n)
	}
}

func TestBrowserCompare(t *testing.T) {
	f := newFixture(t, web.Options{})
	ctx := browser(t)
	open(t, ctx, f.srv.URL+"/")
	err := chromedp.Run(ctx,
		chromedp.Click(`tr[data-id="mnist-baseline"] input.sel`),
		chromedp.Click(`tr[data-id="mnist-wide"] input.sel`),
		chromedp.Click(`#compare`),
		chromedp.WaitVisible(`body[data-ready="1"] #configdiff`),
	)
	if err != nil {
		t.Fatal(err)
	}
	diff := eval[[]string](t, ctx, `[...document.querySelectorAll("#configdiff tbody tr")].map(r => [...r.children].map(c => c.textContent).join("|"))`)
	if len(diff) != 2 || diff[0] != "lr|0.001|0.003" {
		t.Fatalf("config diff %v", diff)
	}
	series := eval[[]int](t, ctx, `[...document.querySelectorAll("#charts .chart")].map(e => e._u.series.length - 1)`)
	if len(series) != 3 || series[0] != 2 {
		t.Fatalf("series per chart %v, want 2 runs on each of 3 charts", series)
	}
	legend := eval[[]string](t, ctx, `[...document.querySelectorAll("#legend a")].map(e => e.textContent)`)
	if strings.Join(legend, ",") != "baseline,wide" {
		t.Fatalf("legend %v", legend)
	}
	screenshot(t, ctx, "compare")
}

func TestBrowserLiveRunGrows(t *testing.T) {
	f := newFixture(t, web.Options{LiveInterval: 50 * time.Millisecond})
	ctx := browser(t)
	open(t, ctx, f.srv.URL+"/run/mnist-live")
	const sel = `document.querySelector('.chart[data-key="train/loss"]')._u.data[1].length`
	if n := eval[int](t, ctx, sel); n != 50 {
		t.Fatalf("%d points before, want 50", n)
	}
	for i := 0; i < 3; i++ {
		f.grow(t, int64(50+10*i), 10)
	}
	err := chromedp.Run(ctx, chromedp.Poll(sel+` === 80`, nil, chromedp.WithPollingTimeout(15*time.Second)))
	if err != nil {
		t.Fatalf("chart did not grow to 80 points (has %d): %v", eval[int](t, ctx, sel), err)
	}
	steps := eval[[]float64](t, ctx, `Array.from(document.querySelector('.chart[data-key="train/loss"]')._u.data[0])`)
	for i, s := range steps {
		if s != float64(i) {
			t.Fatalf("step %d is %v: rows repeated or lost", i, s)
		}
	}
}

func TestBrowserEscapesMarkup(t *testing.T) {
	f := newFixture(t, web.Options{})
	ctx := browser(t)
	dialogs := watchDialogs(ctx)
	open(t, ctx, f.srv.URL+"/?q=img")
	if got := eval[string](t, ctx, `document.querySelector('tr[data-id="xss"] td.name a').textContent`); got != xss {
		t.Fatalf("name in the table: %q", got)
	}
	if got := eval[string](t, ctx, `document.querySelector('tr[data-id="xss"] .tag').textContent`); got != xss {
		t.Fatalf("tag: %q", got)
	}
	open(t, ctx, f.srv.URL+"/run/xss")
	if got := eval[string](t, ctx, `document.querySelector("#runname").textContent`); got != xss {
		t.Fatalf("run name: %q", got)
	}
	chromedp.Run(ctx, chromedp.Click(`.tabs button[data-tab="overview"]`), chromedp.WaitVisible(`#config`))
	if got := eval[[]string](t, ctx, `[...document.querySelectorAll("#config td")].map(e => e.textContent)`); len(got) != 2 || got[0] != xss || got[1] != xss {
		t.Fatalf("config: %q", got)
	}
	chromedp.Run(ctx, chromedp.Click(`.tabs button[data-tab="console"]`), chromedp.WaitVisible(`#console[data-loaded="1"]`))
	if got := eval[string](t, ctx, `document.querySelector("#console .line").textContent`); got != xss {
		t.Fatalf("console: %q", got)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll("#app img").length`); n != 0 {
		t.Fatalf("%d img elements in the page", n)
	}
	if n := dialogs.Load(); n != 0 {
		t.Fatalf("%d dialogs opened", n)
	}
}

// TestBrowserLocalRoot: `runlog ui` over a local root shows its runs, the
// one in a file and the one a live service holds, and a run's charts.
func TestBrowserLocalRoot(t *testing.T) {
	d := localRoot(t)
	liveRun(t, d, "live", 120)
	url := startUICommand(t, d)
	ctx := browser(t)
	open(t, ctx, url)
	ids := eval[[]string](t, ctx, `[...document.querySelectorAll("#runs tbody tr")].map(e => e.dataset.id).sort()`)
	if strings.Join(ids, ",") != "live,offline-a,xss" {
		t.Fatalf("runs table shows %v", ids)
	}
	if got := eval[string](t, ctx, `document.querySelector('tr[data-id="xss"] td.name a').textContent`); got != xss {
		t.Fatalf("run name shows as %q", got)
	}
	screenshot(t, ctx, "local-runs")
	open(t, ctx, url+"run/offline-a")
	keys := eval[[]string](t, ctx, `[...document.querySelectorAll("#charts .chart")].map(e => e.dataset.key)`)
	if strings.Join(keys, ",") != "metric/3,train/acc,train/loss,val/loss" {
		t.Fatalf("charts %v, want one per history key", keys)
	}
	for i, n := range eval[[]int](t, ctx, `[...document.querySelectorAll("#charts .chart")].map(e => e._u.data[1].length)`) {
		if n != 300 {
			t.Fatalf("chart %s has %d points, want 300", keys[i], n)
		}
	}
	open(t, ctx, url+"run/live")
	if n := eval[int](t, ctx, `document.querySelector('.chart[data-key="train/loss"]')._u.data[1].length`); n != 120 {
		t.Fatalf("the live run's chart has %d points, want 120", n)
	}
	err := chromedp.Run(ctx, chromedp.Click(`.tabs button[data-tab="overview"]`), chromedp.WaitVisible(`#config`))
	if err != nil {
		t.Fatal(err)
	}
	where := eval[string](t, ctx, `[...document.querySelectorAll(".card")].filter(c => c.querySelector(".k").textContent == "Read from").map(c => c.querySelector(".v").textContent).join()`)
	if where != "service" {
		t.Fatalf("the overview says the run is read from %q, want service", where)
	}
	screenshot(t, ctx, "local-run")
}

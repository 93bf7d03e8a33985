package web_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/runlog/runlog/client"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/rollup"
	"github.com/runlog/runlog/root"
	"github.com/runlog/runlog/store"
	"github.com/runlog/runlog/wal"
	"github.com/runlog/runlog/web"
	"github.com/runlog/runlog/web/webtest"
)

// walAppender writes generated runs into the logs of a local root, the way
// the service would: each Append opens the run's log, appends and closes
// it, so that nothing holds the file between calls.
type walAppender struct{ d root.Dir }

func (a walAppender) Append(_ context.Context, runID string, records [][]byte) (uint64, error) {
	l, err := wal.Open(a.d.Log(runID), wal.Options{})
	if err != nil {
		return 0, err
	}
	defer l.Close()
	recs := make([]*runlogv1.Record, len(records))
	for i, data := range records {
		recs[i] = new(runlogv1.Record)
		if err := proto.Unmarshal(data, recs[i]); err != nil {
			return 0, err
		}
		// The log stamps seq, id and time itself.
		recs[i].Seq, recs[i].Id, recs[i].TimeUnixNano = 0, nil, 0
	}
	if err := l.Append(recs); err != nil {
		return 0, err
	}
	return l.LastSeq(), nil
}

// localRoot is a root with two finished runs in their files (one named
// with markup, one synced to an upstream up to seq 10).
func localRoot(t testing.TB) root.Dir {
	t.Helper()
	d := root.Dir(t.TempDir())
	ctx := context.Background()
	for _, r := range []webtest.Run{
		{ID: "offline-a", Project: "mnist", Name: "offline a", Rows: 300, Keys: 4,
			Config:  map[string]any{"lr": 0.01},
			Summary: map[string]any{"best_acc": 0.9},
			Console: []string{"epoch 1"},
			Exit:    &runlogv1.Exit{Reason: runlogv1.ExitReason_EXIT_REASON_FINISHED}},
		{ID: "xss", Project: "mnist", Name: xss, Rows: 10,
			Exit: &runlogv1.Exit{Reason: runlogv1.ExitReason_EXIT_REASON_FINISHED}},
	} {
		if _, err := webtest.Write(ctx, walAppender{d}, r); err != nil {
			t.Fatal(err)
		}
	}
	l, err := wal.Open(d.Log("offline-a"), wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.SetCursor(wal.CursorUpstreamPrefix+"grpc://hub.example:7070", 10); err != nil {
		t.Fatal(err)
	}
	if err := l.SetMeta(wal.MetaSyncErrorPrefix+"grpc://hub.example:7070", []byte("connection refused")); err != nil {
		t.Fatal(err)
	}
	l.Close()
	return d
}

func fetchJSON(t testing.TB, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, body)
	}
}

// fileDigest is the digest a hub would keep of the run's records.
func fileDigest(t testing.TB, path string) string {
	t.Helper()
	l, err := wal.Open(path, wal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d := store.NewDigest()
	if err := l.Scan(1, func(_ uint64, data []byte) error { d.Add(data); return nil }); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(d.Sum())
}

type overviewJSON struct {
	Name      string         `json:"name"`
	State     string         `json:"state"`
	Where     string         `json:"where"`
	Digest    string         `json:"digest"`
	LastSeq   uint64         `json:"last_seq"`
	Upstreams []web.Upstream `json:"upstreams"`
}

type chartJSON struct {
	Seq   uint64 `json:"seq"`
	Chart struct {
		Series map[string]struct {
			Steps []int64 `json:"steps"`
		} `json:"series"`
		Exact bool   `json:"exact"`
		Rows  uint64 `json:"rows"`
	} `json:"chart"`
}

func TestLocalRunInFile(t *testing.T) {
	d := localRoot(t)
	srv := httptest.NewServer(web.New(web.NewLocalSource(d, web.LocalOptions{}), web.Options{Title: "root"}))
	defer srv.Close()

	var runs struct {
		Runs []struct {
			ID, Name, State string
		} `json:"runs"`
		Total int `json:"total"`
	}
	fetchJSON(t, srv.URL+"/api/runs?sort=id", &runs)
	if runs.Total != 2 || runs.Runs[0].ID != "offline-a" || runs.Runs[0].State != "finished" || runs.Runs[1].Name != xss {
		t.Fatalf("runs: %+v", runs)
	}

	var o overviewJSON
	fetchJSON(t, srv.URL+"/api/runs/offline-a", &o)
	if o.Where != "file" || o.State != "finished" || o.Name != "offline a" {
		t.Fatalf("overview: %+v", o)
	}
	if want := fileDigest(t, d.Log("offline-a")); o.Digest != want {
		t.Fatalf("digest %s, want %s", o.Digest, want)
	}
	if len(o.Upstreams) != 1 || o.Upstreams[0].Name != "grpc://hub.example:7070" || o.Upstreams[0].Seq != 10 || o.Upstreams[0].Error != "connection refused" {
		t.Fatalf("upstreams: %+v", o.Upstreams)
	}

	var c chartJSON
	fetchJSON(t, srv.URL+"/api/runs/offline-a/chart", &c)
	if !c.Chart.Exact || len(c.Chart.Series) != 4 || len(c.Chart.Series["train/loss"].Steps) != 300 {
		t.Fatalf("chart: exact %v, %d series, %d points", c.Chart.Exact, len(c.Chart.Series), len(c.Chart.Series["train/loss"].Steps))
	}
	var zoom chartJSON
	fetchJSON(t, srv.URL+"/api/runs/offline-a/chart?min=100&max=149&keys=train/acc", &zoom)
	if s := zoom.Chart.Series["train/acc"].Steps; len(zoom.Chart.Series) != 1 || len(s) != 50 || s[0] != 100 || s[49] != 149 {
		t.Fatalf("zoomed chart: %+v", zoom.Chart.Series)
	}

	var recs struct {
		Records []struct {
			Seq  uint64 `json:"seq"`
			Kind string `json:"kind"`
		} `json:"records"`
		Next uint64 `json:"next"`
	}
	fetchJSON(t, srv.URL+"/api/runs/offline-a/records?from=1&limit=5", &recs)
	if len(recs.Records) != 5 || recs.Records[0].Seq != 1 || recs.Records[0].Kind != "run" || recs.Next != 6 {
		t.Fatalf("records: %+v", recs)
	}

	var v web.Verification
	fetchJSON(t, srv.URL+"/api/runs/offline-a/verify", &v)
	if v.Records != o.LastSeq || v.LastGoodSeq != o.LastSeq || v.FirstBadSeq != 0 || len(v.Problems) != 0 {
		t.Fatalf("verify: %+v (last seq %d)", v, o.LastSeq)
	}

	resp, err := http.Get(srv.URL + "/api/runs/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("unknown run: %s", resp.Status)
	}
}

// TestLocalChartExtends: rows appended to the file after a chart was drawn
// show in the next chart, and the rest stays as it was.
func TestLocalChartExtends(t *testing.T) {
	d := root.Dir(t.TempDir())
	ctx := context.Background()
	w := webtest.NewWriter(walAppender{d}, "grow", time.Time{})
	w.Add(&runlogv1.Record{Payload: &runlogv1.Record_Run{Run: &runlogv1.RunInfo{Project: "p", Name: "grow"}}})
	w.Rows(0, 5000, 3)
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	src := web.NewLocalSource(d, web.LocalOptions{})
	res, err := src.Chart(ctx, "grow", rollup.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Exact || res.Rows != 5000 || res.LastStep != 4999 {
		t.Fatalf("first chart: exact %v, %d rows, last step %d", res.Exact, res.Rows, res.LastStep)
	}
	w.Rows(5000, 1000, 3)
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	res, err = src.Chart(ctx, "grow", rollup.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != 6000 || res.LastStep != 5999 || len(res.Series) != 3 {
		t.Fatalf("after 1000 more rows: %d rows, last step %d, %d series", res.Rows, res.LastStep, len(res.Series))
	}
	run, err := src.Run(ctx, "grow")
	if err != nil {
		t.Fatal(err)
	}
	if run.State.GetHistoryRows() != 6000 || run.Seq != 6001 {
		t.Fatalf("run: %d rows, seq %d", run.State.GetHistoryRows(), run.Seq)
	}
}

// TestLocalCacheBounded: with a cache too small for two runs' tiers, the
// run charted first loses them, and its next chart is still right.
func TestLocalCacheBounded(t *testing.T) {
	d := root.Dir(t.TempDir())
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		w := webtest.NewWriter(walAppender{d}, id, time.Time{})
		w.Rows(0, 40000, 2)
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	src := web.NewLocalSource(d, web.LocalOptions{MaxCacheBytes: 100 << 10})
	for _, id := range []string{"a", "b", "a"} {
		res, err := src.Chart(ctx, id, rollup.Query{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Rows != 40000 || len(res.Series) != 2 {
			t.Fatalf("run %s: %d rows, %d series", id, res.Rows, len(res.Series))
		}
	}
	// Each run's tiers alone are over the bound: only the last one stays.
	if runs, bytes := src.Cached(); runs != 1 {
		t.Fatalf("cache holds %d runs (%d bytes), want 1", runs, bytes)
	}
}

// runlogBin returns the runlog binary: $RUNLOG_BIN (make test sets it), else
// one built from this tree.
func runlogBin(t testing.TB) string {
	t.Helper()
	if b := os.Getenv("RUNLOG_BIN"); b != "" {
		return b
	}
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "runlog-web-test-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "runlog")
		if out, err := exec.Command("go", "build", "-o", binPath, "github.com/runlog/runlog/cmd/runlog").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// liveRun starts a real service on d through a client, which opens run id
// and logs rows steps 0..n-1 into it; the client stays attached (the
// service holds the log) until the test ends.
func liveRun(t testing.TB, d root.Dir, id string, n int) *client.Run {
	t.Helper()
	t.Setenv("RUNLOG_SERVICE", "")
	ctx := context.Background()
	c, err := client.Connect(ctx, client.Options{Root: string(d), Binary: runlogBin(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	run, err := c.Init(ctx, client.RunOptions{ID: id, Project: "mnist", Name: "live one", Config: map[string]any{"lr": 0.1}})
	if err != nil {
		t.Fatal(err)
	}
	logRows(t, run, 0, n)
	return run
}

func logRows(t testing.TB, run *client.Run, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := run.Log(int64(i), map[string]any{"train/loss": 1 / float64(i+1), "train/acc": float64(i) / 1000}); err != nil {
			t.Fatal(err)
		}
	}
	if err := run.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestLocalRunHeldByService(t *testing.T) {
	d := localRoot(t)
	run := liveRun(t, d, "live", 200)
	src := web.NewLocalSource(d, web.LocalOptions{})
	srv := httptest.NewServer(web.New(src, web.Options{}))
	defer srv.Close()

	var o overviewJSON
	fetchJSON(t, srv.URL+"/api/runs/live", &o)
	if o.Where != "service" || o.State != "running" || o.Name != "live one" {
		t.Fatalf("overview: %+v", o)
	}
	var c chartJSON
	fetchJSON(t, srv.URL+"/api/runs/live/chart", &c)
	if len(c.Chart.Series["train/loss"].Steps) != 200 || c.Seq != o.LastSeq {
		t.Fatalf("chart: %d points at seq %d, run at seq %d", len(c.Chart.Series["train/loss"].Steps), c.Seq, o.LastSeq)
	}
	var offline overviewJSON
	fetchJSON(t, srv.URL+"/api/runs/offline-a", &offline)
	if offline.Where != "file" {
		t.Fatalf("a run the service does not hold is read from %q", offline.Where)
	}
	var v web.Verification
	fetchJSON(t, srv.URL+"/api/runs/live/verify", &v)
	if v.Records != o.LastSeq || len(v.Problems) != 0 {
		t.Fatalf("verify: %+v", v)
	}

	// Wait returns once the client logs more, followed through the service.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	waited := make(chan error, 1)
	go func() { waited <- src.Wait(ctx, "live", o.LastSeq) }()
	logRows(t, run, 200, 50)
	if err := <-waited; err != nil {
		t.Fatalf("wait: %v", err)
	}
	c = chartJSON{}
	fetchJSON(t, srv.URL+"/api/runs/live/chart", &c)
	if len(c.Chart.Series["train/loss"].Steps) != 250 {
		t.Fatalf("after 50 more rows the chart has %d points", len(c.Chart.Series["train/loss"].Steps))
	}

	// The live stream sends the new rows as they come.
	resp, err := http.Get(fmt.Sprintf("%s/api/runs/live/live?seq=%d", srv.URL, c.Seq))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	logRows(t, run, 250, 10)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	rows := 0
	for rows < 10 && sc.Scan() {
		var ev struct {
			Rows []struct{ Step int64 } `json:"rows"`
		}
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		for _, r := range ev.Rows {
			if r.Step != int64(250+rows) {
				t.Fatalf("live row %d has step %d", rows, r.Step)
			}
			rows++
		}
	}
	if rows != 10 {
		t.Fatalf("live stream sent %d rows, want 10 (%v)", rows, sc.Err())
	}
}

// startUICommand runs `runlog ui --root d --http 127.0.0.1:0` and returns
// the URL it prints.
func startUICommand(t testing.TB, d root.Dir) string {
	t.Helper()
	cmd := exec.Command(runlogBin(t), "ui", "--root", string(d), "--http", "127.0.0.1:0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("runlog ui printed no URL: %v", err)
	}
	m := regexp.MustCompile(`http://\S+/`).FindString(line)
	if m == "" {
		t.Fatalf("runlog ui printed %q, no URL", line)
	}
	return m
}

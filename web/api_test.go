package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/runlog/runlog/web"
	"github.com/runlog/runlog/web/webtest"
)

func getJSON(t *testing.T, f *fixture, path string, v any) {
	t.Helper()
	resp, err := http.Get(f.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s: %s", path, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

type runsPage struct {
	Total int `json:"total"`
	Runs  []struct {
		ID     string         `json:"id"`
		Name   string         `json:"name"`
		State  string         `json:"state"`
		Values map[string]any `json:"values"`
	} `json:"runs"`
	Projects    map[string]int `json:"projects"`
	SummaryKeys []string       `json:"summary_keys"`
}

func TestRunsAPI(t *testing.T) {
	f := newFixture(t, web.Options{})
	var p runsPage
	getJSON(t, f, "/api/runs?sort=summary.best_acc&desc=1&cols=summary.best_acc,config.lr", &p)
	if p.Total != 8 || p.Projects["mnist"] != 5 || p.Projects["cifar"] != 3 {
		t.Fatalf("total %d projects %v", p.Total, p.Projects)
	}
	var order []string
	for _, r := range p.Runs {
		order = append(order, r.ID)
	}
	// Runs without the key come last.
	want := "mnist-wide mnist-baseline cifar-resnet cifar-vit mnist-nan"
	if got := strings.Join(order[:5], " "); got != want {
		t.Fatalf("by best_acc: %s, want %s", got, want)
	}
	if p.Runs[0].Values["summary.best_acc"] != 0.957 || p.Runs[0].Values["config.lr"] != 0.003 {
		t.Fatalf("columns: %v", p.Runs[0].Values)
	}
	states := map[string]string{}
	for _, r := range p.Runs {
		states[r.ID] = r.State
	}
	for id, s := range map[string]string{"mnist-nan": "failed", "cifar-resnet": "crashed", "cifar-vit": "preempted", "cifar-killed": "killed", "mnist-live": "running", "mnist-wide": "finished"} {
		if states[id] != s {
			t.Errorf("%s: state %q, want %q", id, states[id], s)
		}
	}
	getJSON(t, f, "/api/runs?project=cifar&q=res", &p)
	if p.Total != 1 || p.Runs[0].ID != "cifar-resnet" {
		t.Fatalf("project cifar, search res: %+v", p.Runs)
	}
	getJSON(t, f, "/api/runs?q=sweep-1&state=failed", &p)
	if p.Total != 1 || p.Runs[0].ID != "mnist-nan" {
		t.Fatalf("group sweep-1, failed: %+v", p.Runs)
	}
	getJSON(t, f, "/api/runs?limit=3&offset=6", &p)
	if p.Total != 8 || len(p.Runs) != 2 {
		t.Fatalf("page 3 of 3: %d runs of %d", len(p.Runs), p.Total)
	}
	resp, err := http.Get(f.srv.URL + "/api/runs?limit=0")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("limit=0: %s", resp.Status)
	}
}

func TestRunAPI(t *testing.T) {
	f := newFixture(t, web.Options{})
	var o struct {
		Name   string `json:"name"`
		State  string `json:"state"`
		Exit   struct{ Reason, Message string }
		Config []struct {
			Key   string
			Value any
		}
		Summary []struct {
			Key   string
			Value any
		}
		Records uint64 `json:"records"`
		Digest  string `json:"digest"`
	}
	getJSON(t, f, "/api/runs/mnist-nan", &o)
	if o.State != "failed" || o.Exit.Reason != "failed" || !strings.Contains(o.Exit.Message, "FloatingPointError") {
		t.Fatalf("overview: %+v", o)
	}
	if len(o.Config) != 2 || o.Config[0].Key != "batch_size" || len(o.Summary) != 1 || len(o.Digest) != 64 {
		t.Fatalf("config %v summary %v digest %q", o.Config, o.Summary, o.Digest)
	}
	resp, err := http.Get(f.srv.URL + "/api/runs/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("unknown run: %s", resp.Status)
	}
}

func TestChartAPI(t *testing.T) {
	f := newFixture(t, web.Options{})
	var c struct {
		Chart struct {
			Series map[string]struct {
				Steps  []int64
				Values []float64
			}
			Exact bool
		}
	}
	getJSON(t, f, "/api/runs/mnist-baseline/chart", &c)
	if len(c.Chart.Series) != 3 || !c.Chart.Exact {
		t.Fatalf("series %d exact %v", len(c.Chart.Series), c.Chart.Exact)
	}
	for k, s := range c.Chart.Series {
		if len(s.Steps) != 500 {
			t.Fatalf("%s: %d points, want 500", k, len(s.Steps))
		}
	}
	c.Chart.Series = nil
	getJSON(t, f, "/api/runs/mnist-baseline/chart?keys=train/acc&min=100&max=199", &c)
	s := c.Chart.Series["train/acc"]
	if len(c.Chart.Series) != 1 || len(s.Steps) != 100 || s.Steps[0] != 100 || s.Steps[99] != 199 {
		t.Fatalf("zoom: %d series, %d points", len(c.Chart.Series), len(s.Steps))
	}
}

func TestRecordsVerifyLogAPI(t *testing.T) {
	f := newFixture(t, web.Options{})
	var rp struct {
		Records []struct {
			Seq     uint64
			Kind    string
			Content string
		}
		Next uint64
	}
	getJSON(t, f, "/api/runs/mnist-nan/records?from=1&limit=10", &rp)
	if len(rp.Records) != 10 || rp.Records[0].Kind != "run" || rp.Records[9].Seq != 10 || rp.Next != 11 {
		t.Fatalf("records page: %+v", rp)
	}
	var v web.Verification
	getJSON(t, f, "/api/runs/mnist-nan/verify", &v)
	if len(v.Problems) != 0 || v.DigestMatch == nil || !*v.DigestMatch || v.LastGoodSeq != v.Records || v.Records < 120 {
		t.Fatalf("verify: %+v", v)
	}
	var lg struct {
		Console []struct {
			Stderr bool
			Text   string
		}
		Alerts []struct{ Title, Level string }
		Stats  []struct{ Items map[string]float64 }
	}
	getJSON(t, f, "/api/runs/mnist-nan/log", &lg)
	if len(lg.Console) != 2 || !lg.Console[1].Stderr || !strings.Contains(lg.Console[1].Text, "nan") || len(lg.Alerts) != 1 || lg.Alerts[0].Level != "warn" {
		t.Fatalf("log: %+v", lg)
	}
	getJSON(t, f, "/api/runs/mnist-baseline/log", &lg)
	if len(lg.Stats) != 40 || lg.Stats[0].Items["cpu"] == 0 {
		t.Fatalf("stats: %d", len(lg.Stats))
	}
}

func TestCompareAPI(t *testing.T) {
	f := newFixture(t, web.Options{})
	var c struct {
		Runs       []struct{ ID string }
		ConfigDiff []struct {
			Key    string
			Values []any
		} `json:"config_diff"`
	}
	getJSON(t, f, "/api/compare?ids=mnist-baseline,mnist-wide", &c)
	var keys []string
	for _, d := range c.ConfigDiff {
		keys = append(keys, d.Key)
	}
	if len(c.Runs) != 2 || strings.Join(keys, ",") != "lr,model" {
		t.Fatalf("diff keys %v (batch_size is the same and must not show)", keys)
	}
}

func TestLiveSendsOnlyNewRows(t *testing.T) {
	f := newFixture(t, web.Options{LiveInterval: 1})
	var o struct {
		LastSeq uint64 `json:"last_seq"`
	}
	getJSON(t, f, "/api/runs/mnist-live", &o)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+"/api/runs/mnist-live/live?seq="+itoa(o.LastSeq), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	br := bufio.NewReader(resp.Body)
	if line, _ := br.ReadString('\n'); line != ": live\n" {
		t.Fatalf("first line %q", line)
	}
	f.grow(t, 50, 7)
	got := 0
	for got < 7 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var ev struct {
			Seq  uint64
			Rows []struct {
				Step   int64
				Time   int64
				Values map[string]float64
			}
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatal(err)
		}
		for _, r := range ev.Rows {
			if r.Step != int64(50+got) {
				t.Fatalf("row step %d, want %d: a row the page had was sent again or one was lost", r.Step, 50+got)
			}
			if r.Time <= 0 {
				t.Fatalf("row step %d has time %d", r.Step, r.Time)
			}
			if len(r.Values) != 3 {
				t.Fatalf("row step %d has values %v, want 3 keys", r.Step, r.Values)
			}
			for k := range 3 {
				if v, want := r.Values[webtest.KeyName(k)], webtest.KeyValue(k, r.Step); v != want {
					t.Fatalf("row step %d key %s = %v, want %v", r.Step, webtest.KeyName(k), v, want)
				}
			}
			got++
		}
	}
}

func itoa(n uint64) string { return strings.TrimSpace(strings.Replace(jsonNum(n), "\n", "", -1)) }

func jsonNum(n uint64) string { b, _ := json.Marshal(n); return string(b) }

func TestAuth(t *testing.T) {
	f := newFixture(t, web.Options{Token: "s3cret"})
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path, bearer string, cookie *http.Cookie, form url.Values) *http.Response {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, f.srv.URL+path, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		if cookie != nil {
			req.AddCookie(cookie)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	for _, path := range []string{"/api/runs", "/api/runs/mnist-baseline", "/api/runs/mnist-baseline/chart", "/", "/run/mnist-baseline", "/static/app.js"} {
		if r := do("GET", path, "", nil, nil); r.StatusCode != 401 {
			t.Errorf("GET %s without token: %s", path, r.Status)
		}
		if r := do("GET", path, "wrong", nil, nil); r.StatusCode != 401 {
			t.Errorf("GET %s with a wrong token: %s", path, r.Status)
		}
	}
	r := do("GET", "/api/runs", "", nil, nil)
	b, _ := io.ReadAll(r.Body)
	if strings.Contains(string(b), "mnist") {
		t.Fatalf("401 body leaks runs: %s", b)
	}
	if r := do("GET", "/api/runs", "s3cret", nil, nil); r.StatusCode != 200 {
		t.Fatalf("bearer: %s", r.Status)
	}
	if r := do("POST", "/login", "", nil, url.Values{"token": {"wrong"}}); r.StatusCode != 401 || len(r.Cookies()) != 0 {
		t.Fatalf("login with a wrong token: %s, cookies %v", r.Status, r.Cookies())
	}
	r = do("POST", "/login", "", nil, url.Values{"token": {"s3cret"}})
	if r.StatusCode != 303 || len(r.Cookies()) != 1 {
		t.Fatalf("login: %s, cookies %v", r.Status, r.Cookies())
	}
	c := r.Cookies()[0]
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || strings.Contains(c.Value, "s3cret") {
		t.Fatalf("cookie %+v", c)
	}
	if r := do("GET", "/api/runs", "", c, nil); r.StatusCode != 200 {
		t.Fatalf("cookie: %s", r.Status)
	}
	if r := do("GET", "/", "", c, nil); r.StatusCode != 200 {
		t.Fatalf("page with cookie: %s", r.Status)
	}
	forged := &http.Cookie{Name: c.Name, Value: "s3cret"}
	if r := do("GET", "/api/runs", "", forged, nil); r.StatusCode != 401 {
		t.Fatalf("the token as cookie: %s", r.Status)
	}
	// Logging out is a POST; a GET changes nothing.
	if r := do("GET", "/logout", "", c, nil); r.StatusCode != 405 && r.StatusCode != 404 {
		t.Fatalf("GET /logout: %s", r.Status)
	}
}

func TestBuildWithoutChartLibrary(t *testing.T) {
	st := newFixture(t, web.Options{}).st
	srv := web.New(web.NewHubSource(st), web.Options{Assets: fstest.MapFS{"app.js": {Data: []byte("x")}}})
	rec := newRecorder()
	req, _ := http.NewRequest("GET", "/", nil)
	srv.ServeHTTP(rec, req)
	if rec.code != 503 || !strings.Contains(rec.body.String(), "make build") {
		t.Fatalf("%d %s", rec.code, rec.body.String())
	}
}

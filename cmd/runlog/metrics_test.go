package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/runlog/runlog/client"
)

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// getMetrics scrapes url with an optional bearer token and parses the
// answer with the Prometheus text parser; it returns the status code.
func getMetrics(t *testing.T, url, token string) (int, map[string]*dto.MetricFamily) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return resp.StatusCode, fams
}

func counter(t *testing.T, fams map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil || len(f.GetMetric()) == 0 {
		t.Fatalf("no metric %s in the scrape", name)
	}
	m := f.GetMetric()[0]
	if m.Counter != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

// TestServiceMetricsAndJSONLog runs a service with --metrics-listen and
// --log-format json, logs a known number of rows, and checks the scrape and
// the log lines.
func TestServiceMetricsAndJSONLog(t *testing.T) {
	root := t.TempDir()
	addr := freeAddr(t)
	svc := startService(t, root, "--metrics-listen", addr, "--log-format", "json")
	c := connect(t, root)
	r, err := c.Init(context.Background(), client.RunOptions{ID: "metrics"})
	if err != nil {
		t.Fatal(err)
	}
	const rows = 1000
	logRows(t, r, 0, rows)
	_, fams := getMetrics(t, "http://"+addr+"/metrics", "")
	if got := counter(t, fams, "runlog_records_appended_total"); got != rows {
		t.Errorf("runlog_records_appended_total = %v after %d rows", got, rows)
	}
	if got := counter(t, fams, "runlog_open_runs"); got != 1 {
		t.Errorf("runlog_open_runs = %v", got)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "runlog_commits_total"} {
		if fams[name] == nil {
			t.Errorf("no %s in the scrape", name)
		}
	}
	finish(t, r)
	svc.stop()
	lines := 0
	sc := bufio.NewScanner(strings.NewReader(svc.stderr.String()))
	for sc.Scan() {
		var v map[string]any
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Errorf("log line is not JSON: %q", sc.Text())
			continue
		}
		if v["msg"] == nil || v["level"] == nil {
			t.Errorf("log line without msg or level: %q", sc.Text())
		}
		lines++
	}
	// Start, run created, attached, finished, stop...: a handful of lines,
	// never one per record.
	if lines == 0 || lines > 30 {
		t.Errorf("%d log lines for one run of %d rows:\n%s", lines, rows, svc.stderr.String())
	}
}

// TestHubMetricsNeedTheToken checks the hub's /metrics on its --http
// address: refused without the hub's token, served with it, counting what
// was ingested.
func TestHubMetricsNeedTheToken(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	portFile := filepath.Join(dir, "hub.port")
	h := start(t, "hub", "--listen", "127.0.0.1:0", "--store", filepath.Join(dir, "store"), "--port-file", portFile,
		"--http", "127.0.0.1:0", "--token-file", tok)
	var info struct {
		TCP  string `json:"tcp"`
		HTTP string `json:"http"`
	}
	waitFile(t, h, portFile, &info)

	root := t.TempDir()
	startService(t, root, "--upstream", "grpc://"+info.TCP, "--upstream-token-file", tok)
	c := connect(t, root)
	r, err := c.Init(context.Background(), client.RunOptions{ID: "hubbed"})
	if err != nil {
		t.Fatal(err)
	}
	logRows(t, r, 0, 100)
	finish(t, r)
	waitClosed(t, root, "hubbed")

	url := strings.TrimSuffix(info.HTTP, "/") + "/metrics"
	if code, _ := getMetrics(t, url, ""); code != http.StatusUnauthorized {
		t.Fatalf("GET /metrics without the token: %d, want 401", code)
	}
	if code, _ := getMetrics(t, url, "wrong"); code != http.StatusUnauthorized {
		t.Fatalf("GET /metrics with a wrong token: %d, want 401", code)
	}
	// Run info, 100 rows, exit; resends would only add. The sender syncs
	// after the run closed: wait for the counter.
	var fams map[string]*dto.MetricFamily
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, fams = getMetrics(t, url, "s3cret")
		if counter(t, fams, "runlog_hub_ingested_records_total") >= 102 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("runlog_hub_ingested_records_total = %v after 30s, want at least 102",
				counter(t, fams, "runlog_hub_ingested_records_total"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if fams["runlog_hub_store_append_duration_seconds"] == nil || fams["go_goroutines"] == nil {
		t.Errorf("scrape lacks the store latency or the Go collectors")
	}
}

// TestSenderErrorsPerUpstream runs a service whose upstream is a closed
// loopback port: its failed sync sessions show in the scrape, counted for
// that upstream.
func TestSenderErrorsPerUpstream(t *testing.T) {
	root := t.TempDir()
	addr := freeAddr(t)
	up := "grpc://" + freeAddr(t) // nothing listens there
	startService(t, root, "--metrics-listen", addr, "--upstream", up)
	c := connect(t, root)
	r, err := c.Init(context.Background(), client.RunOptions{ID: "unsynced"})
	if err != nil {
		t.Fatal(err)
	}
	logRows(t, r, 0, 10)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, fams := getMetrics(t, "http://"+addr+"/metrics", "")
		var got float64
		for _, m := range fams["runlog_sender_errors_total"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "upstream" && l.GetValue() == up {
					got = m.GetCounter().GetValue()
				}
			}
		}
		if got > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("runlog_sender_errors_total{upstream=%q} still 0 after 30s: %v", up, fams["runlog_sender_errors_total"])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/runlog/runlog/client"
)

// listedRun and benchJSON are the parts of `runlog runs --json` and
// `runlog bench --json` the tests read.
type listedRun struct {
	ID        string `json:"run_id"`
	Project   string `json:"project"`
	Name      string `json:"name"`
	State     string `json:"state"`
	Records   uint64 `json:"records"`
	LastStep  int64  `json:"last_step"`
	SizeBytes int64  `json:"size_bytes"`
	Error     string `json:"error"`
}

type benchJSON struct {
	Runs            int      `json:"runs"`
	Records         int      `json:"records"`
	Acked           uint64   `json:"acked"`
	RecordsPerSec   float64  `json:"records_per_sec"`
	AckP50Ms        float64  `json:"ack_p50_ms"`
	AckP99Ms        float64  `json:"ack_p99_ms"`
	AckMaxMs        float64  `json:"ack_max_ms"`
	ServiceRSSMaxMB float64  `json:"service_rss_max_mb"`
	ServiceRestarts uint64   `json:"service_restarts"`
	Batches         uint64   `json:"batches"`
	Verified        bool     `json:"verified"`
	Problems        []string `json:"problems"`
}

// mustRun runs `runlog args...`, fails the test unless it exits 0 and
// returns its stdout.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := runCmd(t, args...)
	if code != 0 {
		t.Fatalf("runlog %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout
}

// TestDemoThenRuns logs the demo run into a service the test started, lists
// it through the service, stops the service and lists it again from the
// files: both listings must agree.
func TestDemoThenRuns(t *testing.T) {
	root := t.TempDir()
	svc := startService(t, root)

	id := strings.TrimSpace(mustRun(t, "demo", "--root", root, "--steps", "120"))
	if id == "" || strings.Contains(id, "\n") {
		t.Fatalf("demo printed %q, want the run id alone", id)
	}

	var live []listedRun
	if err := json.Unmarshal([]byte(mustRun(t, "runs", "--root", root, "--json")), &live); err != nil {
		t.Fatal(err)
	}
	svc.stop()
	var files []listedRun
	if err := json.Unmarshal([]byte(mustRun(t, "runs", "--root", root, "--json")), &files); err != nil {
		t.Fatal(err)
	}
	for _, rows := range [][]listedRun{live, files} {
		if len(rows) != 1 {
			t.Fatalf("runs listed %d runs, want 1: %+v", len(rows), rows)
		}
		r := rows[0]
		// run info, config, 120 rows, 5 epoch lines, summary, a last line, exit
		if r.ID != id || r.Project != "demo" || r.Name != "mlp-fake-mnist" || r.State != "finished" ||
			r.Records != 130 || r.LastStep != 119 || r.SizeBytes <= 0 || r.Error != "" {
			t.Errorf("run listed as %+v", r)
		}
	}
	if live[0].SizeBytes != files[0].SizeBytes {
		t.Errorf("size through the service %d, from the file %d", live[0].SizeBytes, files[0].SizeBytes)
	}
	table := mustRun(t, "runs", "--root", root)
	if !strings.Contains(table, id) || !strings.Contains(table, "finished") {
		t.Errorf("table:\n%s", table)
	}
}

// TestBenchVerifies runs a small benchmark end to end: the bench starts its
// own service, and the JSON must describe a verified run.
func TestBenchVerifies(t *testing.T) {
	root := t.TempDir()
	out := mustRun(t, "bench", "--root", root, "--runs", "2", "--records", "3000", "--keys", "5", "--json")
	var res benchJSON
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("bench json: %v\n%s", err, out)
	}
	if !res.Verified || res.Acked != 6000 || res.Runs != 2 || res.Records != 3000 || len(res.Problems) != 0 || res.ServiceRestarts != 0 {
		t.Fatalf("bench result %+v", res)
	}
	if res.RecordsPerSec <= 0 || res.ServiceRSSMaxMB <= 0 || res.Batches == 0 {
		t.Errorf("bench figures missing: %+v", res)
	}
	if !(res.AckP50Ms > 0 && res.AckP50Ms <= res.AckP99Ms && res.AckP99Ms <= res.AckMaxMs) {
		t.Errorf("latencies out of order: p50 %v p99 %v max %v", res.AckP50Ms, res.AckP99Ms, res.AckMaxMs)
	}
	// The bench stopped its service: the root is free again.
	if _, err := os.Stat(client.SocketPath(root)); err == nil {
		t.Errorf("service socket still there after bench")
	}
	var rows []listedRun
	if err := json.Unmarshal([]byte(mustRun(t, "runs", "--root", root, "--json")), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Records != 3002 || rows[0].State != "finished" {
		t.Errorf("bench runs: %+v", rows)
	}
}

// TestBenchRefusesABusyRoot: the bench must not stop or measure someone
// else's service.
func TestBenchRefusesABusyRoot(t *testing.T) {
	root := t.TempDir()
	svc := startService(t, root)
	code, stdout, stderr := runCmd(t, "bench", "--root", root, "--records", "10")
	if code == 0 {
		t.Fatalf("bench on a busy root succeeded:\n%s", stdout)
	}
	if !strings.Contains(stderr, "already running") {
		t.Errorf("stderr: %s", stderr)
	}
	svc.stop()
}

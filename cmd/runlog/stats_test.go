package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runlog/runlog/client"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// selfRSS reads this process's resident set from /proc, in bytes.
func selfRSS(t *testing.T) float64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb * 1024
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestServiceSamplesSystemStats runs a service sampling every 200ms and a
// client in this process, and checks the samples in the run's log: at the
// interval, CPU shares within 0..100, memory within the machine's total,
// and the client's resident memory as /proc tells it.
func TestServiceSamplesSystemStats(t *testing.T) {
	root := t.TempDir()
	startService(t, root, "--stats-interval", "200ms")
	c := connect(t, root)
	r, err := c.Init(context.Background(), client.RunOptions{ID: "sys"})
	if err != nil {
		t.Fatal(err)
	}
	_, rpc := dialService(t, client.SocketPath(root))
	var samples []*runlogv1.Record
	deadline := time.Now().Add(30 * time.Second)
	for len(samples) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("%d system stats records after 30s at 200ms", len(samples))
		}
		time.Sleep(100 * time.Millisecond)
		samples = samples[:0]
		st, err := rpc.Read(context.Background(), &runlogv1.ReadRequest{RunId: "sys"})
		if err != nil {
			t.Fatal(err)
		}
		for {
			resp, err := st.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, rec := range resp.Records {
				if rec.GetStats() != nil {
					samples = append(samples, rec)
				}
			}
		}
	}
	rss := selfRSS(t)
	last := samples[len(samples)-1]
	items := map[string]float64{}
	for _, it := range last.GetStats().GetItems() {
		items[it.Key] = it.GetValue().GetDoubleValue()
	}
	for k, v := range items {
		if strings.HasPrefix(k, "cpu.") && (v < 0 || v > 100) {
			t.Errorf("%s = %v", k, v)
		}
		if strings.HasPrefix(k, "gpu.") && os.Getenv("RUNLOG_EXPECT_GPU") == "" {
			t.Logf("GPU key %s = %v (this machine has a GPU)", k, v)
		}
	}
	if items["memory.used_bytes"] <= 0 || items["memory.used_bytes"] > items["memory.total_bytes"] {
		t.Errorf("memory.used_bytes %v of %v", items["memory.used_bytes"], items["memory.total_bytes"])
	}
	if got := items["proc.rss_bytes"]; got < rss*0.8 || got > rss*1.2 {
		t.Errorf("proc.rss_bytes = %.0f, /proc says the client holds %.0f", got, rss)
	}
	if items["proc.count"] < 1 {
		t.Errorf("proc.count = %v", items["proc.count"])
	}
	n := len(samples)
	if mean := time.Duration(samples[n-1].TimeUnixNano-samples[0].TimeUnixNano) / time.Duration(n-1); mean < 150*time.Millisecond || mean > 2*time.Second {
		t.Errorf("samples %v apart on average at 200ms", mean)
	}
	t.Logf("%d keys per sample; client RSS %.1f MiB (sampled %.1f MiB)", len(items), rss/(1<<20), items["proc.rss_bytes"]/(1<<20))
	finish(t, r)
}

// TestStatusCommand runs runlog status against a service with one open run
// that syncs to a hub which is down, and checks the table and the JSON.
func TestStatusCommand(t *testing.T) {
	root := t.TempDir()
	startService(t, root, "--stats-interval", "0")
	c := connect(t, root)
	r, err := c.Init(context.Background(), client.RunOptions{ID: "busy"})
	if err != nil {
		t.Fatal(err)
	}
	logRows(t, r, 0, 100)
	code, out, errOut := runCmd(t, "status", "--root", root, "--interval", "100ms")
	if code != 0 {
		t.Fatalf("runlog status: exit %d\n%s", code, errOut)
	}
	for _, want := range []string{"service pid", "disk:", "open runs: 1", "busy"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	code, out, errOut = runCmd(t, "status", "--root", root, "--json", "--interval", "10ms")
	if code != 0 {
		t.Fatalf("runlog status --json: exit %d\n%s", code, errOut)
	}
	var st struct {
		PID           int    `json:"pid"`
		DiskFreeBytes uint64 `json:"disk_free_bytes"`
		Runs          []struct {
			ID      string `json:"id"`
			LastSeq uint64 `json:"last_seq"`
			Clients int    `json:"clients"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if st.PID <= 0 || st.DiskFreeBytes == 0 || len(st.Runs) != 1 || st.Runs[0].ID != "busy" || st.Runs[0].LastSeq != 101 || st.Runs[0].Clients != 1 {
		t.Errorf("status --json: %+v", st)
	}
	finish(t, r)
	if code, _, _ := runCmd(t, "status", "--root", t.TempDir()); code != 1 {
		t.Errorf("status without a service: exit %d, want 1", code)
	}
}

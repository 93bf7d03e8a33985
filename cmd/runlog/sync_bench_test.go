package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runlog/runlog/client"
)

// The figures of upstream sync, measured with real processes:
//
//	go test -run '^$' -bench 'SyncOffline|SyncHeld|BacklogRSS' -benchtime 1x ./cmd/runlog/
//
// RUNLOG_BENCH_RECORDS overrides the number of records (1,000,000 for the
// sync, 5,000,000 for the backlog).

func benchRecords(b *testing.B, def int) int {
	if v := os.Getenv("RUNLOG_BENCH_RECORDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("RUNLOG_BENCH_RECORDS: %v", err)
		}
		return n
	}
	return def
}

// logThroughService logs one run of n 10-key history rows through a service
// on root and returns the service, still running. The run is finished,
// unless open is set: then a client of this process stays attached to it
// until the benchmark ends, so the service holds the run's log.
func logThroughService(b *testing.B, root, id string, n int, open bool, serviceArgs ...string) *serviceProc {
	b.Helper()
	s := startService(b, root, serviceArgs...)
	ctx := context.Background()
	c, err := client.Connect(ctx, client.Options{Root: root, Address: "unix://" + client.SocketPath(root), NoStart: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	run, err := c.Init(ctx, client.RunOptions{ID: id, Project: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	vals := make([]float64, len(metricKeys))
	for i := range n {
		for k := range vals {
			vals[k] = float64(i) * float64(k+1)
		}
		if err := run.LogFloats(int64(i), metricKeys, vals); err != nil {
			b.Fatal(err)
		}
	}
	if open {
		if err := run.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		return s
	}
	if err := run.Finish(ctx, 0); err != nil {
		b.Fatal(err)
	}
	c.Close()
	return s
}

// benchSync runs `runlog sync --all` of root into a new hub b.N times and
// reports the sync's records/s; every run must send at least n records.
func benchSync(b *testing.B, root string, n int) {
	b.ResetTimer()
	var rate float64
	for range b.N {
		h := startHub(b)
		code, stdout, stderr := runCmd(b, "sync", "--root", root, "--upstream", h.URL, "--all", "--json", "--progress", "0")
		if code != 0 {
			b.Fatalf("sync: exit %d\n%s", code, stderr)
		}
		var rep struct {
			RecordsSent   uint64  `json:"records_sent"`
			RecordsPerSec float64 `json:"records_per_sec"`
		}
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
			b.Fatal(err)
		}
		if rep.RecordsSent < uint64(n) {
			b.Fatalf("sent %d records, want at least %d", rep.RecordsSent, n)
		}
		rate = rep.RecordsPerSec
		h.stop()
	}
	b.ReportMetric(rate, "records/s")
}

// BenchmarkSyncOffline1M measures `runlog sync` of one run of 1,000,000
// records (10 scalar keys per row) into a hub on loopback with its bbolt
// store, fsync on: the figure is records_per_sec of the sync process.
func BenchmarkSyncOffline1M(b *testing.B) {
	n := benchRecords(b, 1_000_000)
	root := b.TempDir()
	svc := logThroughService(b, root, "big", n, false, "--offline")
	svc.stop()
	benchSync(b, root, n)
}

// BenchmarkSyncHeld1M is BenchmarkSyncOffline1M with the run open in a
// running service: runlog sync reads it through the service.
func BenchmarkSyncHeld1M(b *testing.B) {
	n := benchRecords(b, 1_000_000)
	root := b.TempDir()
	logThroughService(b, root, "big", n, true, "--offline", "--crash-grace", "1h")
	benchSync(b, root, n)
}

// BenchmarkServiceBacklogRSS logs a 5,000,000-record run through a service
// whose upstream hub is down and reports the service's peak resident memory
// (VmHWM) and its resident memory at the end (VmRSS, with RssAnon, the part
// that is not the log's file pages). Then it starts the hub and reports the
// largest RssAnon while the service drains the backlog, and the drain rate.
func BenchmarkServiceBacklogRSS(b *testing.B) {
	n := benchRecords(b, 5_000_000)
	h := startHub(b)
	h.stop() // the hub is down for the whole run
	for range b.N {
		root := b.TempDir()
		svc := logThroughService(b, root, "backlog", n, false, "--upstream", h.URL)
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", svc.cmd.Process.Pid))
		if err != nil {
			b.Fatal(err)
		}
		for _, f := range []string{"VmHWM", "VmRSS", "RssAnon"} {
			kb := procField(string(st), f)
			b.ReportMetric(float64(kb)/1024, f+"_MiB")
		}
		// Then the hub comes back and the backlog drains: the service's
		// own memory (RssAnon) stays bounded while it reads the whole log.
		h.restart(b)
		hc := h.client(b)
		maxAnon := 0
		start := time.Now()
		for {
			st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", svc.cmd.Process.Pid))
			if err != nil {
				b.Fatal(err)
			}
			maxAnon = max(maxAnon, procField(string(st), "RssAnon"))
			if r := hubRun(b, hc, "backlog"); r != nil && r.GetState().GetExit() != nil {
				break
			}
			if time.Since(start) > 10*time.Minute {
				b.Fatal("backlog not synced within 10 minutes")
			}
			time.Sleep(100 * time.Millisecond)
		}
		b.ReportMetric(float64(maxAnon)/1024, "drain_RssAnon_max_MiB")
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "drain_records/s")
		h.stop()
		svc.stop()
	}
}

// procField returns a "Name:   123 kB" field of /proc/PID/status in kB.
func procField(status, name string) int {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return -1
}

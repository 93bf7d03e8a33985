package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runlog/runlog/store/pgtest"
	"github.com/runlog/runlog/store/storetest"
)

// The figures of hubs on PostgreSQL (fsync on, PostgreSQL's defaults
// otherwise), measured with real processes on loopback:
//
//	go test -run '^$' -bench 'Postgres' -benchtime 1x ./cmd/runlog/
//
// RUNLOG_BENCH_RECORDS overrides the records of the one-run sync.

// pgBench starts a cluster and a database and returns the database's URL.
func pgBench(b *testing.B) (*pgtest.Cluster, string) {
	b.Helper()
	cl := pgtest.New(b)
	url, err := cl.CreateDB(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return cl, url
}

// pgSyncReport is what the benchmarks read of runlog sync --json.
type pgSyncReport struct {
	Runs []struct {
		RunID   string  `json:"run_id"`
		Sent    uint64  `json:"sent"`
		Seconds float64 `json:"seconds"`
	} `json:"runs"`
	RecordsSent   uint64  `json:"records_sent"`
	RecordsPerSec float64 `json:"records_per_sec"`
	OK            bool    `json:"ok"`
}

func syncTo(b *testing.B, root, url string, args ...string) pgSyncReport {
	b.Helper()
	code, stdout, stderr := runCmd(b, append([]string{"sync", "--root", root, "--upstream", url, "--json", "--progress", "0"}, args...)...)
	if code != 0 {
		b.Fatalf("sync: exit %d\n%s", code, stderr)
	}
	var rep pgSyncReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		b.Fatal(err)
	}
	return rep
}

// procKiB reads a field of /proc/PID/status in KiB.
func procKiB(b *testing.B, pid int, field string) int {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	return procField(string(st), field)
}

// dbConns samples the database's connections until stop is closed and
// returns the most it saw.
func dbConns(url string, stop <-chan struct{}) func() int {
	var (
		mu   sync.Mutex
		most int
		wg   sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			var n int
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()").Scan(&n); err == nil {
				mu.Lock()
				most = max(most, n)
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() int {
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return most
	}
}

// BenchmarkSyncOfflinePostgres1M is BenchmarkSyncOffline1M into a hub on
// PostgreSQL; it also reports the hub's peak resident memory.
func BenchmarkSyncOfflinePostgres1M(b *testing.B) {
	n := benchRecords(b, 1_000_000)
	root := b.TempDir()
	makeRun(b, root, "big", storetest.Run{Project: "bench", Rows: n, Keys: 10})
	var rate float64
	for range b.N {
		_, url := pgBench(b)
		h := startPGHub(b, url)
		b.ResetTimer()
		rep := syncTo(b, root, h.URL, "--all")
		b.StopTimer()
		if rep.RecordsSent < uint64(n) {
			b.Fatalf("sent %d records, want %d", rep.RecordsSent, n)
		}
		rate = rep.RecordsPerSec
		b.ReportMetric(float64(procKiB(b, h.cmd.Process.Pid, "VmHWM"))/1024, "hub_peak_RSS_MiB")
		h.stop()
	}
	b.ReportMetric(rate, "records/s")
}

// syncSplit syncs the runs of root into two hubs at once, half each, and
// returns the two reports and the wall time.
func syncSplit(b *testing.B, root string, ids []string, hubs [2]*hubProc, args ...string) ([2]pgSyncReport, time.Duration) {
	var (
		reps [2]pgSyncReport
		wg   sync.WaitGroup
	)
	start := time.Now()
	for i := range 2 {
		half := ids[i*len(ids)/2 : (i+1)*len(ids)/2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			reps[i] = syncTo(b, root, hubs[i].URL, append(append([]string{}, args...), half...)...)
		}()
	}
	wg.Wait()
	return reps, time.Since(start)
}

// BenchmarkSyncPostgres8Runs2Hubs syncs 8 runs of 250,000 records into two
// hubs over one database at once (4 runs each): records/s over the wall
// time of both syncs.
func BenchmarkSyncPostgres8Runs2Hubs(b *testing.B) {
	const runs, rows = 8, 250_000
	root := b.TempDir()
	var ids []string
	for i := range runs {
		id := fmt.Sprintf("run-%d", i)
		makeRun(b, root, id, storetest.Run{Project: "bench", Rows: rows, Keys: 10})
		ids = append(ids, id)
	}
	for range b.N {
		_, url := pgBench(b)
		hubs := [2]*hubProc{startPGHub(b, url), startPGHub(b, url)}
		b.ResetTimer()
		reps, wall := syncSplit(b, root, ids, hubs, "--parallel", "4")
		b.StopTimer()
		sent := reps[0].RecordsSent + reps[1].RecordsSent
		if sent < runs*rows {
			b.Fatalf("sent %d records", sent)
		}
		b.ReportMetric(float64(sent)/wall.Seconds(), "records/s")
		for i, h := range hubs {
			b.ReportMetric(float64(procKiB(b, h.cmd.Process.Pid, "VmHWM"))/1024, fmt.Sprintf("hub%d_peak_RSS_MiB", i))
			h.stop()
		}
	}
}

// BenchmarkSyncPostgres1000Runs syncs 1,000 runs of 1,000 records into two
// hubs over one database (500 each, 16 at once per sync): total records/s,
// the slowest and the median run's sync time, and the most connections the
// database saw (each hub's pool holds at most 8, plus one listener).
func BenchmarkSyncPostgres1000Runs(b *testing.B) {
	const runs, rows = 1000, 998 // with the run and config records, 1,000 each
	root := b.TempDir()
	var ids []string
	for i := range runs {
		id := fmt.Sprintf("run-%04d", i)
		makeRun(b, root, id, storetest.Run{Project: "bench", Rows: rows, Keys: 10})
		ids = append(ids, id)
	}
	for range b.N {
		_, url := pgBench(b)
		hubs := [2]*hubProc{startPGHub(b, url), startPGHub(b, url)}
		stop := make(chan struct{})
		conns := dbConns(url, stop)
		b.ResetTimer()
		reps, wall := syncSplit(b, root, ids, hubs, "--parallel", "16")
		b.StopTimer()
		close(stop)
		var secs []float64
		var sent uint64
		for _, rep := range reps {
			sent += rep.RecordsSent
			for _, r := range rep.Runs {
				secs = append(secs, r.Seconds)
			}
		}
		if len(secs) != runs || sent < runs*1000 {
			b.Fatalf("%d runs, %d records synced", len(secs), sent)
		}
		sort.Float64s(secs)
		b.ReportMetric(float64(sent)/wall.Seconds(), "records/s")
		b.ReportMetric(secs[len(secs)-1]*1000, "slowest_run_ms")
		b.ReportMetric(secs[len(secs)/2]*1000, "median_run_ms")
		b.ReportMetric(float64(conns()), "max_db_conns")
		for _, h := range hubs {
			h.stop()
		}
	}
}

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runlog/runlog/client"
)

// TestBenchSurvivesServiceKills runs `runlog bench` as a real process and
// SIGKILLs its service four times while the runs log: three times once the
// client has re-attached its runs to the service, once as soon as a new
// service serves (before the client reached it). The client starts the
// service again each time and resends what was not acknowledged; the bench
// must count every restart and still find each acked record in the logs
// exactly once.
func TestBenchSurvivesServiceKills(t *testing.T) {
	root := t.TempDir()
	const runs, records = 2, 100_000
	// Paced, so that the runs are still logging when the kills land: at
	// 40,000 records/s the bench logs for five seconds.
	b := start(t, "bench", "--root", root, "--runs", strconv.Itoa(runs), "--records", strconv.Itoa(records),
		"--keys", "5", "--rate", "40000", "--json")

	// The service's log says when the client (re-)attached its runs.
	attached := func() int {
		data, _ := os.ReadFile(filepath.Join(root, "service.log"))
		return strings.Count(string(data), `msg="client attached"`)
	}
	const kills = 4
	killed := map[int]bool{}
	for k := range kills {
		var pid int
		waitFor(t, b, "a new service serving", func() bool {
			// A serving service has rewritten the lock with its socket;
			// a killed one has left its pid behind.
			info, err := client.ReadLock(root)
			pid = info.PID
			return err == nil && info.Socket != "" && pid > 0 && !killed[pid]
		})
		if k < kills-1 {
			waitFor(t, b, "the runs attached to the new service", func() bool { return attached() >= runs*(k+1) })
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill service pid %d: %v", pid, err)
		}
		killed[pid] = true
	}
	if code := b.wait(); code != 0 {
		t.Fatalf("bench exited %d\nstdout:\n%s\nstderr:\n%s", code, b.stdout.String(), b.stderr.String())
	}
	var res benchJSON
	if err := json.Unmarshal([]byte(b.stdout.String()), &res); err != nil {
		t.Fatalf("bench json: %v\n%s", err, b.stdout.String())
	}
	if res.ServiceRestarts < kills {
		t.Errorf("bench counted %d service restarts, the test killed %d services", res.ServiceRestarts, kills)
	}
	if !res.Verified || res.Acked != runs*records || len(res.Problems) != 0 {
		t.Errorf("bench result after %d kills: verified %v, acked %d of %d, problems %q", kills, res.Verified, res.Acked, runs*records, res.Problems)
	}
	if res.ServiceRSSMaxMB <= 0 {
		t.Errorf("no service memory read across restarts: %+v", res)
	}
	// The service after the last kill ran to the end: the bench saw it
	// take over.
	if !strings.Contains(b.stderr.String(), "took over") {
		t.Errorf("bench reported no service restart on stderr:\n%s", b.stderr.String())
	}
	if t.Failed() {
		t.Logf("bench stderr:\n%s", b.stderr.String())
	}
}

// waitFor polls cond until it holds, failing the test if p exits first or
// after 60s. What it waits for lies in another process's files, which
// signal nothing: polling is the event.
func waitFor(t *testing.T, p *proc, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-p.done:
			t.Fatalf("waiting for %s: the process exited: %v\nstderr:\n%s", what, p.err, p.stderr.String())
		case <-deadline:
			t.Fatalf("no %s after 60s\nstderr:\n%s", what, p.stderr.String())
		case <-tick.C:
		}
	}
}

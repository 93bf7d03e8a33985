package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/runlog/runlog/hub"
	"github.com/runlog/runlog/local"
	"github.com/runlog/runlog/mux"
	"github.com/runlog/runlog/root"
	"github.com/runlog/runlog/sender"
	"github.com/runlog/runlog/wal"
)

// The service's follower hook takes upstream senders as they are.
var _ mux.Follower = (*sender.Follower)(nil)

// upstreamFollowers builds the service's followers from its --offline,
// --upstream (repeatable) and --upstream-token-file flags: one
// sender.Follower that runs a sender per (run, upstream), or none when the
// service is offline or has no upstream. Connections are made lazily, by
// the senders. Call the returned function after the service stopped, to
// close the connections.
func upstreamFollowers(offline bool, upstreams []string, tokenFile string, log *slog.Logger, onError func(upstream string, err error)) ([]mux.Follower, func(), error) {
	if offline || len(upstreams) == 0 {
		if offline && len(upstreams) > 0 {
			log.Info("offline: runs are not synced; use runlog sync later", "upstreams", upstreams)
		}
		return nil, func() {}, nil
	}
	token, err := hub.ReadTokenFile(tokenFile)
	if err != nil {
		return nil, nil, err
	}
	targets, closeAll, err := sender.DialTargets(upstreams, sender.HubOptions{Token: token})
	if err != nil {
		return nil, nil, err
	}
	log.Info("syncing runs upstream", "upstreams", upstreams)
	return []mux.Follower{sender.NewFollower(targets, sender.Options{Logger: log, OnError: onError})}, closeAll, nil
}

func cmdSync(args []string) int { return runSync(args, os.Stdout, os.Stderr) }

// syncReport is the --json output.
type syncReport struct {
	Upstream      string         `json:"upstream"`
	Runs          []local.Pushed `json:"runs"`
	Total         int            `json:"total"`
	Synced        int            `json:"synced"`
	UpToDate      int            `json:"up_to_date"`
	Damaged       int            `json:"damaged"`
	Failed        int            `json:"failed"`
	Skipped       int            `json:"skipped"`
	RecordsSent   uint64         `json:"records_sent"`
	Seconds       float64        `json:"seconds"`
	RecordsPerSec float64        `json:"records_per_sec"`
	OK            bool           `json:"ok"`
}

type syncConfig struct {
	dir                     root.Dir
	upstream, token, caFile string
	runs                    []string
	parallel, retries       int
	json                    bool
	progress                time.Duration
}

func runSync(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("runlog sync", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: runlog sync --upstream URL [--root DIR] [--token-file F] (--all | RUN...) [flags]

Pushes what a hub lacks of the runs under a root: offline runs, and runs a
service could not sync. The hub's high-water mark decides where each run
starts, so a repeated sync sends nothing. A damaged run syncs up to the record
before the damage and is reported with that record's seq; the other runs
carry on. Exits 1 if any run failed or is damaged.

Works whether or not a service runs on the root. A run the service holds open
is read through the service, each record exactly as the log stores it, so the
hub's digest is the same as from the file. Its cursor in the log (what
runlog runs shows as SYNCED) is not moved, as the service holds the file:
the cursor is advisory, the hub's mark decides what is sent, and the cursor
catches up the next time the run is synced from the file or by the service.
If the service syncs the same run to the same hub itself (--upstream), both
may push at once; the hub keeps each (run, seq) once, so that is harmless. A
run another process holds (not a service) is skipped and that process named.

Progress goes to stderr, one line per run to stdout (or one JSON object with
--json).

Flags:
`)
		fs.PrintDefaults()
	}
	var c syncConfig
	var tokenFile string
	var all bool
	var rootFlag string
	fs.StringVar(&rootFlag, "root", "", "runlog root (default $RUNLOG_DIR or ~/.runlog)")
	fs.StringVar(&c.upstream, "upstream", "", "hub URL: grpc://HOST:PORT or grpcs://HOST:PORT")
	fs.StringVar(&tokenFile, "token-file", "", "file holding the hub's bearer token")
	fs.StringVar(&c.caFile, "ca-file", "", "PEM certificates to trust for grpcs:// besides the system's")
	fs.BoolVar(&all, "all", false, "sync every run under the root")
	fs.IntVar(&c.parallel, "parallel", 4, "runs synced at once")
	fs.IntVar(&c.retries, "retries", 5, "attempts in a row without progress before a run fails (hub unreachable)")
	fs.BoolVar(&c.json, "json", false, "print one JSON object instead of lines")
	fs.DurationVar(&c.progress, "progress", time.Second, "interval of the progress line on stderr (0: none)")
	var err error
	if c.runs, err = parseInterspersed(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if c.upstream == "" || all == (len(c.runs) > 0) {
		fmt.Fprintln(stderr, "runlog sync: --upstream URL and either --all or run ids are required")
		fs.Usage()
		return 2
	}
	if _, _, _, err := sender.ParseURL(c.upstream); err != nil {
		fmt.Fprintf(stderr, "runlog sync: %v\n", err)
		return 2
	}
	if c.retries < 1 {
		fmt.Fprintf(stderr, "runlog sync: --retries %d: want at least 1 attempt\n", c.retries)
		return 2
	}
	if c.parallel < 1 {
		c.parallel = 1
	}
	if c.token, err = hub.ReadTokenFile(tokenFile); err != nil {
		fmt.Fprintf(stderr, "runlog sync: %v\n", err)
		return 2
	}
	if c.dir, err = root.Resolve(rootFlag); err != nil {
		fmt.Fprintf(stderr, "runlog sync: %v\n", err)
		return 2
	}
	if all {
		// A mistyped --root would otherwise sync "no runs" and succeed.
		if fi, err := os.Stat(c.dir.Runs()); err != nil || !fi.IsDir() {
			fmt.Fprintf(stderr, "runlog sync: no runs under %s (want %s): check --root or $%s\n", c.dir, c.dir.Log("RUN"), root.EnvDir)
			return 1
		}
		if c.runs, err = c.dir.RunIDs(); err != nil {
			fmt.Fprintf(stderr, "runlog sync: %v\n", err)
			return 1
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := syncRuns(ctx, c, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "runlog sync: %v\n", err)
		return 2
	}
	if c.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		for _, r := range rep.Runs {
			fmt.Fprintln(stdout, syncLine(r))
		}
	}
	fmt.Fprintln(stderr, syncSummaryLine(rep))
	if !rep.OK {
		return 1
	}
	return 0
}

// syncRuns syncs c.runs with c.parallel workers and reports on each.
func syncRuns(ctx context.Context, c syncConfig, progress io.Writer) (*syncReport, error) {
	up, err := sender.DialHub(c.upstream, sender.HubOptions{Token: c.token, CAFile: c.caFile, MaxBackoff: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	defer up.Close()
	rep := &syncReport{Upstream: up.URL(), Total: len(c.runs)}
	var sent, done atomic.Uint64
	log := slog.New(slog.NewTextHandler(progress, &slog.HandlerOptions{Level: slog.LevelWarn}))
	start := time.Now()

	stopProgress := make(chan struct{})
	var progressDone sync.WaitGroup
	if c.progress > 0 {
		progressDone.Add(1)
		go func() {
			defer progressDone.Done()
			t := time.NewTicker(c.progress)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					el := time.Since(start).Seconds()
					n := sent.Load()
					fmt.Fprintf(progress, "sync: %d/%d runs done, %d records sent, %.0f records/s\n",
						done.Load(), len(c.runs), n, float64(n)/el)
				case <-stopProgress:
					return
				}
			}
		}()
	}

	// Every push retries c.retries failed sessions in a row, waits capped
	// at five seconds.
	opts := sender.Options{Logger: log, MaxAttempts: c.retries, BackoffMax: 5 * time.Second}
	rep.Runs = local.PushAll(ctx, c.dir, c.runs, sender.Target{URL: up.URL(), Up: up}, c.parallel, opts, &sent, &done)
	close(stopProgress)
	progressDone.Wait()

	rep.Seconds = time.Since(start).Seconds()
	for _, r := range rep.Runs {
		rep.RecordsSent += r.Sent
		switch r.Result {
		case local.Synced:
			rep.Synced++
		case local.UpToDate:
			rep.UpToDate++
		case local.Damaged:
			rep.Damaged++
		case local.Failed:
			rep.Failed++
		case local.Skipped:
			rep.Skipped++
		}
	}
	if rep.Seconds > 0 {
		rep.RecordsPerSec = float64(rep.RecordsSent) / rep.Seconds
	}
	rep.OK = rep.Failed == 0 && rep.Damaged == 0
	return rep, nil
}

// syncLine is the line printed for one run.
func syncLine(r local.Pushed) string {
	via := ""
	if r.ThroughService {
		via = " through the service"
	}
	switch r.Result {
	case local.Synced:
		return fmt.Sprintf("run %s: synced %d records%s, hub holds 1..%d", r.RunID, r.Sent, via, r.HighWater)
	case local.UpToDate:
		return fmt.Sprintf("run %s: up to date, hub holds 1..%d, nothing sent", r.RunID, r.HighWater)
	case local.Damaged:
		return fmt.Sprintf("run %s: %s; synced the records before it (hub holds 1..%d, %d sent)", r.RunID, r.Error, r.HighWater, r.Sent)
	case local.Skipped:
		return fmt.Sprintf("run %s: skipped: %s", r.RunID, r.Error)
	}
	return fmt.Sprintf("run %s: failed: %s", r.RunID, r.Error)
}

// syncSummaryLine is the last line on stderr.
func syncSummaryLine(rep *syncReport) string {
	if rep.Total > 0 && rep.RecordsSent == 0 && rep.UpToDate == rep.Total {
		return fmt.Sprintf("sync: nothing to send: all %d runs are up to date on %s", rep.Total, rep.Upstream)
	}
	var parts []string
	for _, p := range []struct {
		n    int
		what string
	}{{rep.Synced, "synced"}, {rep.UpToDate, "up to date"}, {rep.Damaged, "damaged"}, {rep.Failed, "failed"}, {rep.Skipped, "skipped"}} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.what))
		}
	}
	if len(parts) == 0 {
		parts = append(parts, "no runs")
	}
	return fmt.Sprintf("sync: %d runs to %s: %s; %d records in %.1fs (%.0f records/s)",
		rep.Total, rep.Upstream, strings.Join(parts, ", "), rep.RecordsSent, rep.Seconds, rep.RecordsPerSec)
}

// addSyncState fills each row's Synced and Lag from its upstream cursors.
func addSyncState(rows []runRow) {
	for i := range rows {
		r := &rows[i]
		r.Synced = wal.UpstreamCursors(r.Cursors)
		for url, seq := range r.Synced {
			if r.Lag == nil {
				r.Lag = make(map[string]uint64)
			}
			r.Lag[url] = r.Records - min(seq, r.Records)
		}
	}
}

// syncColumns are the runs table's columns for upstream sync, present when
// some run syncs upstream: the acknowledged sequence, the lag and the last
// error, per upstream when there are several.
func syncColumns(rows []runRow) []runColumn {
	seen := map[string]bool{}
	for _, r := range rows {
		for url := range r.Synced {
			seen[url] = true
		}
		for url := range r.SyncErrors {
			seen[url] = true
		}
	}
	if len(seen) == 0 {
		return nil
	}
	urls := make([]string, 0, len(seen))
	for u := range seen {
		urls = append(urls, u)
	}
	sort.Strings(urls)
	// Several upstreams are told apart by HOST:PORT, or by the whole URL
	// when grpc:// and grpcs:// name the same address.
	short := make(map[string]string, len(urls))
	count := map[string]int{}
	for _, u := range urls {
		_, target, _, err := sender.ParseURL(u)
		if err != nil {
			target = u
		}
		short[u] = target
		count[target]++
	}
	for _, u := range urls {
		if count[short[u]] > 1 {
			short[u] = u
		}
	}
	cell := func(r runRow, f func(url string) string) string {
		if len(urls) == 1 {
			return f(urls[0])
		}
		parts := make([]string, 0, len(urls))
		for _, u := range urls {
			parts = append(parts, short[u]+"="+f(u))
		}
		return strings.Join(parts, " ")
	}
	return []runColumn{
		{"SYNCED", func(r runRow) string {
			return cell(r, func(u string) string {
				if s, ok := r.Synced[u]; ok {
					return fmt.Sprint(s)
				}
				return "-"
			})
		}},
		{"LAG", func(r runRow) string {
			return cell(r, func(u string) string {
				if l, ok := r.Lag[u]; ok {
					return fmt.Sprint(l)
				}
				return "-"
			})
		}},
		{"SYNC ERROR", func(r runRow) string {
			var errs []string
			for _, u := range urls {
				if e := r.SyncErrors[u]; e != "" {
					if len(e) > 80 {
						e = e[:77] + "..."
					}
					if len(urls) > 1 {
						e = u + ": " + e
					}
					errs = append(errs, e)
				}
			}
			return strings.Join(errs, "; ")
		}},
	}
}

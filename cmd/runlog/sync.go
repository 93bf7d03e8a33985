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
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/runlog/runlog/mux"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
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
func upstreamFollowers(offline bool, upstreams []string, tokenFile string, log *slog.Logger) ([]mux.Follower, func(), error) {
	if offline || len(upstreams) == 0 {
		if offline && len(upstreams) > 0 {
			log.Info("offline: runs are not synced; use runlog sync later", "upstreams", upstreams)
		}
		return nil, func() {}, nil
	}
	var token string
	if tokenFile != "" {
		var err error
		if token, err = readTokenFile(tokenFile); err != nil {
			return nil, nil, err
		}
	}
	var (
		targets []sender.Target
		hubs    []*sender.Hub
	)
	closeAll := func() {
		for _, h := range hubs {
			h.Close()
		}
	}
	seen := map[string]bool{}
	for _, u := range upstreams {
		h, err := sender.DialHub(u, sender.HubOptions{Token: token})
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		if seen[h.URL()] {
			h.Close()
			continue
		}
		seen[h.URL()] = true
		hubs = append(hubs, h)
		targets = append(targets, sender.Target{URL: h.URL(), Up: h})
	}
	log.Info("syncing runs upstream", "upstreams", upstreams)
	return []mux.Follower{sender.NewFollower(targets, sender.Options{Logger: log})}, closeAll, nil
}

func cmdSync(args []string) int { return runSync(args, os.Stdout, os.Stderr) }

// Results of one run's sync, as printed and in --json.
const (
	syncSynced   = "synced"     // records were sent and acknowledged
	syncUpToDate = "up_to_date" // the hub held everything already
	syncDamaged  = "damaged"    // the valid prefix synced, then a damaged record
	syncFailed   = "failed"     // the hub refused or could not be reached
	syncSkipped  = "skipped"    // a process that is not a service holds the run's log
)

// syncRun is one run's outcome.
type syncRun struct {
	RunID  string `json:"run_id"`
	Result string `json:"result"`
	// Sent is how many records the hub gained.
	Sent uint64 `json:"sent"`
	// HighWater is the hub's mark after the sync (records 1..high_water).
	HighWater  uint64  `json:"high_water"`
	LastSeq    uint64  `json:"last_seq"`
	DamagedSeq uint64  `json:"damaged_seq,omitempty"`
	Error      string  `json:"error,omitempty"`
	Seconds    float64 `json:"seconds"`
	// ThroughService is set when a running service held the log and the
	// records were read through it.
	ThroughService bool `json:"through_service,omitempty"`
}

// syncReport is the --json output.
type syncReport struct {
	Upstream      string    `json:"upstream"`
	Runs          []syncRun `json:"runs"`
	Total         int       `json:"total"`
	Synced        int       `json:"synced"`
	UpToDate      int       `json:"up_to_date"`
	Damaged       int       `json:"damaged"`
	Failed        int       `json:"failed"`
	Skipped       int       `json:"skipped"`
	RecordsSent   uint64    `json:"records_sent"`
	Seconds       float64   `json:"seconds"`
	RecordsPerSec float64   `json:"records_per_sec"`
	OK            bool      `json:"ok"`
}

type syncConfig struct {
	root, upstream, token, caFile string
	runs                          []string
	parallel, retries             int
	json                          bool
	progress                      time.Duration
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
	fs.StringVar(&c.root, "root", "", "runlog root (default $RUNLOG_DIR or ~/.runlog)")
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
	if tokenFile != "" {
		tok, err := readTokenFile(tokenFile)
		if err != nil {
			fmt.Fprintf(stderr, "runlog sync: %v\n", err)
			return 2
		}
		c.token = tok
	}
	root, err := rootFromFlag(c.root)
	if err != nil {
		fmt.Fprintf(stderr, "runlog sync: %v\n", err)
		return 2
	}
	c.root = root
	if all {
		// A mistyped --root would otherwise sync "no runs" and succeed.
		if fi, err := os.Stat(filepath.Join(root, "runs")); err != nil || !fi.IsDir() {
			fmt.Fprintf(stderr, "runlog sync: no runs under %s (want %s): check --root or $RUNLOG_DIR\n", root, filepath.Join(root, "runs", "RUN", "wal.bolt"))
			return 1
		}
		if c.runs, err = syncListRuns(root); err != nil {
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

// syncListRuns returns the ids of the runs under root, sorted.
func syncListRuns(root string) ([]string, error) {
	paths, err := filepath.Glob(filepath.Join(root, "runs", "*", "wal.bolt"))
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(paths))
	for _, p := range paths {
		ids = append(ids, filepath.Base(filepath.Dir(p)))
	}
	sort.Strings(ids)
	return ids, nil
}

// retryOptions are the retry bounds of every push of a sync, from a file or
// through the service: c.retries failed sessions in a row, waits capped at
// five seconds.
func (c syncConfig) retryOptions(log *slog.Logger) sender.Options {
	return sender.Options{Logger: log, MaxAttempts: c.retries, BackoffMax: 5 * time.Second}
}

// syncRuns syncs c.runs with c.parallel workers and reports on each.
func syncRuns(ctx context.Context, c syncConfig, progress io.Writer) (*syncReport, error) {
	up, err := sender.DialHub(c.upstream, sender.HubOptions{Token: c.token, CAFile: c.caFile, MaxBackoff: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	defer up.Close()
	rep := &syncReport{Upstream: up.URL(), Runs: make([]syncRun, len(c.runs)), Total: len(c.runs)}
	var (
		sent atomic.Uint64
		done atomic.Int64
	)
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

	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(c.parallel, max(len(c.runs), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				rep.Runs[i] = syncOne(ctx, c, up, c.runs[i], log, &sent)
				done.Add(1)
			}
		}()
	}
	for i := range c.runs {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(stopProgress)
	progressDone.Wait()

	rep.Seconds = time.Since(start).Seconds()
	for _, r := range rep.Runs {
		rep.RecordsSent += r.Sent
		switch r.Result {
		case syncSynced:
			rep.Synced++
		case syncUpToDate:
			rep.UpToDate++
		case syncDamaged:
			rep.Damaged++
		case syncFailed:
			rep.Failed++
		case syncSkipped:
			rep.Skipped++
		}
	}
	if rep.Seconds > 0 {
		rep.RecordsPerSec = float64(rep.RecordsSent) / rep.Seconds
	}
	rep.OK = rep.Failed == 0 && rep.Damaged == 0
	return rep, nil
}

// syncOne syncs one run: from its log file, or through the service that
// holds it.
func syncOne(ctx context.Context, c syncConfig, up *sender.Hub, id string, log *slog.Logger, sent *atomic.Uint64) (res syncRun) {
	start := time.Now()
	res = syncRun{RunID: id}
	defer func() { res.Seconds = time.Since(start).Seconds() }()
	path := filepath.Join(c.root, "runs", id, "wal.bolt")
	// Read-write, so the cursor and the last error are kept beside the
	// records; a log that cannot be written syncs read-only.
	l, err := wal.Open(path, wal.Options{MustExist: true, LockTimeout: 200 * time.Millisecond})
	var damaged *wal.CorruptError
	if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EROFS) || errors.As(err, &damaged) {
		// A damaged log is never opened for writing; its valid prefix
		// still syncs.
		l, err = wal.Open(path, wal.Options{ReadOnly: true, LockTimeout: 200 * time.Millisecond})
	}
	switch {
	case errors.Is(err, wal.ErrLocked):
		syncHeld(ctx, c, up, id, path, &res, log, sent)
		return res
	case errors.Is(err, wal.ErrNotExist):
		res.Result = syncFailed
		res.Error = fmt.Sprintf("no run %s under %s", id, c.root)
		return res
	case err != nil:
		res.Result = syncFailed
		res.Error = err.Error()
		return res
	}
	defer l.Close()
	res.LastSeq = l.LastSeq()
	var gained uint64
	opts := c.retryOptions(log)
	opts.Drain = true
	opts.OnAck = func(_, added uint64) {
		gained += added
		sent.Add(added)
	}
	s := sender.New(l, id, up.URL(), up, opts)
	err = s.Run(ctx)
	res.Sent = gained
	res.HighWater = s.Acked()
	if d := l.Damage(); err == nil && d != nil {
		err = d // the valid prefix is synced; the log ends in damage
	}
	syncOutcome(&res, err)
	return res
}

// syncOutcome sets res's result from how its push ended.
func syncOutcome(res *syncRun, err error) {
	var corrupt *wal.CorruptError
	switch {
	case err == nil && res.Sent > 0:
		res.Result = syncSynced
	case err == nil:
		res.Result = syncUpToDate
	case errors.As(err, &corrupt):
		res.Result = syncDamaged
		res.DamagedSeq = corrupt.Seq
		res.Error = fmt.Sprintf("damaged record at seq %d: %v", corrupt.Seq, corrupt.Err)
	default:
		res.Result = syncFailed
		res.Error = err.Error()
	}
}

// syncHeld syncs a run whose log another process holds. The service on the
// root, when it answers for the run, sends the records as stored (the same
// connection runlog replay uses); otherwise the run is skipped and the
// holder named.
func syncHeld(ctx context.Context, c syncConfig, up *sender.Hub, id, path string, res *syncRun, log *slog.Logger, sent *atomic.Uint64) {
	svc, err := replayDial(ctx, c.root, id)
	if err != nil {
		res.Result = syncSkipped
		res.Error = replayLockedError(c.root, id, path, err).Error()
		return
	}
	defer svc.conn.Close()
	res.ThroughService = true
	p := &servicePush{svc: svc, up: up, id: id, path: path, onAck: func(_, added uint64) {
		res.Sent += added
		sent.Add(added)
	}}
	err = p.run(ctx, c.retryOptions(log))
	if err != nil && !errors.Is(err, context.Canceled) {
		err = fmt.Errorf("sync run %s to %s through the service: %w", id, up.URL(), err)
	}
	res.HighWater, res.LastSeq = p.acked, p.last
	syncOutcome(res, err)
}

// Bounds of a push through the service, as the sender's defaults: a batch
// holds at most servicePushRecords records or servicePushBytes bytes (a
// larger record goes alone), and at most servicePushInflight batches wait
// for their ack.
const (
	servicePushRecords  = 4096
	servicePushBytes    = 1 << 20
	servicePushInflight = 4
)

// servicePush pushes a run to the hub from the service that holds its log.
// Like a sender it starts each session at the hub's mark and sends the
// record at it (the hub's identity check) and those after it exactly as
// stored, but it reads them from the service's
// Read stream (encoded) and leaves the cursor alone: only the service may
// write the log. Memory stays bounded: one batch being filled, the batches
// in flight, and the gRPC windows.
type servicePush struct {
	svc   *replayService
	up    sender.Upstream
	id    string
	path  string // the log's, for errors
	onAck func(highWater, added uint64)

	acked uint64 // the hub's mark as last acknowledged
	last  uint64 // the last seq the service sent (the log's end when a session ends)
}

// run pushes until the hub holds every record the service sent, retrying
// failed sessions as a sender does (sender.Retry with opts). A damaged
// record ends it with an error wrapping a *wal.CorruptError once the
// records before it are acknowledged.
func (p *servicePush) run(ctx context.Context, opts sender.Options) error {
	return sender.Retry(ctx, opts, p.session)
}

// session asks the hub for its mark, reads the run from it through the
// service and sends the rest in batches, several in flight, until the
// service's stream ends and every batch is acknowledged.
func (p *servicePush) session(ctx context.Context) (progressed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := p.up.Open(ctx, p.id)
	if err != nil {
		return false, err
	}
	defer st.Close()

	type inflight struct{ batch, last uint64 }
	var pending []inflight
	// recv takes the next ack. A Send that failed with io.EOF (the hub
	// ended the session) learns the reason here too.
	recv := func() error {
		b, hw, err := st.Recv()
		if err != nil {
			return err
		}
		if len(pending) == 0 || b != pending[0].batch {
			return status.Errorf(codes.Internal, "hub answered batch %d out of order", b)
		}
		want := pending[0]
		pending = pending[1:]
		if hw < want.last {
			return status.Errorf(codes.Internal, "hub acknowledged up to seq %d a batch ending at %d", hw, want.last)
		}
		if hw > p.acked {
			p.onAck(hw, hw-p.acked)
			p.acked = hw
			progressed = true
		}
		return nil
	}
	send := func(batch uint64, recs [][]byte) error {
		err := st.Send(batch, recs)
		if !errors.Is(err, io.EOF) {
			return err
		}
		for {
			if _, _, err := st.Recv(); err != nil {
				return err
			}
		}
	}

	if err := send(0, nil); err != nil {
		return false, err
	}
	_, hw, err := st.Recv()
	if err != nil {
		return false, err
	}
	p.acked = hw
	// The record at the mark is sent again: the hub compares it with its
	// own and refuses another run that uses the same id (ALREADY_EXISTS).
	// Its ack leaves the mark where it is. A log that lacks it is not the
	// run the hub holds.
	from, check := max(hw, 1), hw > 0
	rs, err := p.svc.c.Read(ctx, &runlogv1.ReadRequest{RunId: p.id, FromSeq: from, Encoded: true})
	if err != nil {
		return false, fmt.Errorf("read through the service: %w", err)
	}
	var (
		next    = from // the seq of the next record the service sends
		batch   uint64
		recs    [][]byte
		size    int
		readErr error
	)
	flush := func() error {
		if len(recs) == 0 {
			return nil
		}
		for len(pending) >= servicePushInflight {
			if err := recv(); err != nil {
				return err
			}
		}
		batch++
		if err := send(batch, recs); err != nil {
			return err
		}
		// Send encoded the request: the slice may be reused.
		pending = append(pending, inflight{batch: batch, last: next - 1})
		clear(recs)
		recs, size = recs[:0], 0
		return nil
	}
	for readErr == nil {
		resp, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			readErr = err
			break
		}
		for _, r := range resp.GetEncoded() {
			check = false
			if len(recs) > 0 && (len(recs) >= servicePushRecords || size+len(r) > servicePushBytes) {
				if err := flush(); err != nil {
					return progressed, err
				}
			}
			recs = append(recs, r)
			size += len(r)
			next++
		}
	}
	if readErr == nil && check {
		return false, fmt.Errorf("%w: the hub holds %d records of run %s, the service's log fewer; was another run with the same id synced there?",
			sender.ErrConflict, hw, p.id)
	}
	// What was read goes out before a damaged record is reported.
	if err := flush(); err != nil {
		return progressed, err
	}
	for len(pending) > 0 {
		if err := recv(); err != nil {
			return progressed, err
		}
	}
	switch {
	case readErr == nil:
		p.last = next - 1
		return progressed, nil
	case status.Code(readErr) == codes.DataLoss:
		p.last = next - 1
		// The service's message wraps the log's *wal.CorruptError: keep
		// what it says about the record.
		msg := status.Convert(readErr).Message()
		if _, what, ok := strings.Cut(msg, fmt.Sprintf("corrupt record at seq %d: ", next)); ok {
			msg = what
		}
		return progressed, &wal.CorruptError{Path: p.path, Seq: next, Err: errors.New(msg)}
	}
	return progressed, fmt.Errorf("read through the service: %w", readErr)
}

// syncLine is the line printed for one run.
func syncLine(r syncRun) string {
	via := ""
	if r.ThroughService {
		via = " through the service"
	}
	switch r.Result {
	case syncSynced:
		return fmt.Sprintf("run %s: synced %d records%s, hub holds 1..%d", r.RunID, r.Sent, via, r.HighWater)
	case syncUpToDate:
		return fmt.Sprintf("run %s: up to date, hub holds 1..%d, nothing sent", r.RunID, r.HighWater)
	case syncDamaged:
		return fmt.Sprintf("run %s: %s; synced the records before it (hub holds 1..%d, %d sent)", r.RunID, r.Error, r.HighWater, r.Sent)
	case syncSkipped:
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
		for name, seq := range r.Cursors {
			url, ok := strings.CutPrefix(name, wal.CursorUpstreamPrefix)
			if !ok {
				continue
			}
			if r.Synced == nil {
				r.Synced, r.Lag = make(map[string]uint64), make(map[string]uint64)
			}
			r.Synced[url] = seq
			if r.Records > seq {
				r.Lag[url] = r.Records - seq
			} else {
				r.Lag[url] = 0
			}
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

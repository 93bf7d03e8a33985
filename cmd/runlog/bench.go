package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/runlog/runlog/client"
	layout "github.com/runlog/runlog/root"
	"github.com/runlog/runlog/wal"
	"github.com/runlog/runlog/wire"
)

func cmdBench(args []string) int { return runBench(args, os.Stdout, os.Stderr) }

type benchConfig struct {
	root    string
	runs    int
	records int
	keys    int
	rate    float64 // total offered records/s; 0 is as fast as possible
	batch   int
	linger  time.Duration
	json    bool
	// metricsListen starts the service with --metrics-listen.
	metricsListen string
}

// benchResult is what `runlog bench --json` prints.
type benchResult struct {
	Runs          int     `json:"runs"`
	Records       int     `json:"records"` // per run
	Keys          int     `json:"keys"`
	OfferedRate   float64 `json:"offered_rate,omitempty"`
	Acked         uint64  `json:"acked"`
	Seconds       float64 `json:"seconds"`
	RecordsPerSec float64 `json:"records_per_sec"`
	AckP50Ms      float64 `json:"ack_p50_ms"`
	AckP99Ms      float64 `json:"ack_p99_ms"`
	AckMaxMs      float64 `json:"ack_max_ms"`
	// ServiceRSSMaxMB is the service's peak resident memory (VmHWM), MiB:
	// the largest of every service process's when it was restarted.
	ServiceRSSMaxMB float64 `json:"service_rss_max_mb"`
	// ServiceRestarts counts the service processes started after the first
	// one: each is a service that died (SIGKILLed, say) and was started
	// again by the client, which then resent what was not acknowledged.
	ServiceRestarts uint64   `json:"service_restarts"`
	Batches         uint64   `json:"batches"`
	WindowWaits     uint64   `json:"window_waits"`
	Verified        bool     `json:"verified"`
	Problems        []string `json:"problems,omitempty"`
}

func runBench(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("runlog bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: runlog bench [--root DIR] --runs K --records N [--keys 10] [--rate R] [--json]

Measures durable logging through the Go client and a service it starts in
DIR with this executable: K runs log N history rows of KEYS float metrics
each, in parallel, as fast as they can or at a total offered rate R records/s
(paced). It reports acked records/s (from the first log call to the last
ack), the ack latency of every record (from its log call to the ack that
covered it) at p50/p99/max, and the service's peak resident memory. Then it
stops the service and reads every run's log to check that each acked record
is there once, with gap-free sequences. It exits 1 when that check fails.

Kill the service while it runs (kill -9 the pid in DIR/service.lock, as often
as you like): the client starts it again and resends what was not yet
acknowledged, the bench counts the restarts, and the check at the end still
finds every acked record once.

DIR must not have a running service; the default is a new temporary
directory, removed afterwards.

Flags:
`)
		fs.PrintDefaults()
	}
	var cfg benchConfig
	fs.StringVar(&cfg.root, "root", "", "directory for the service and the runs (default: a temporary one)")
	fs.IntVar(&cfg.runs, "runs", 1, "runs logging in parallel")
	fs.IntVar(&cfg.records, "records", 100000, "history rows per run")
	fs.IntVar(&cfg.keys, "keys", 10, "float metrics per row")
	fs.Float64Var(&cfg.rate, "rate", 0, "total offered records/s over all runs (0: as fast as possible)")
	fs.IntVar(&cfg.batch, "batch", 0, "records per Publish batch (0: the client's default)")
	fs.DurationVar(&cfg.linger, "linger", 0, "how long a partial batch waits while another is in flight (0: the client's default)")
	fs.BoolVar(&cfg.json, "json", false, "print one JSON object instead of lines")
	fs.StringVar(&cfg.metricsListen, "metrics-listen", "", "start the service with --metrics-listen `HOST:PORT` (to measure what serving metrics costs)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 || cfg.runs < 1 || cfg.records < 1 || cfg.keys < 1 || cfg.rate < 0 {
		fmt.Fprintln(stderr, "runlog bench: --runs, --records and --keys must be positive, --rate not negative, no arguments")
		return 2
	}
	if cfg.root == "" {
		dir, err := os.MkdirTemp("", "runlog-bench-")
		if err != nil {
			fmt.Fprintf(stderr, "runlog bench: %v\n", err)
			return 1
		}
		defer os.RemoveAll(dir)
		cfg.root = dir
	}
	res, err := bench(cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "runlog bench: %v\n", err)
		return 1
	}
	if cfg.json {
		if code := writeIndentedJSON(stdout, stderr, res); code != 0 {
			return code
		}
	} else {
		printBench(stdout, cfg, res)
	}
	if !res.Verified {
		return 1
	}
	return 0
}

func printBench(w io.Writer, cfg benchConfig, r *benchResult) {
	offered := "as fast as possible"
	if cfg.rate > 0 {
		offered = fmt.Sprintf("offered %.0f records/s", cfg.rate)
	}
	fmt.Fprintf(w, "runs %d x %d records of %d keys, %s\n", r.Runs, r.Records, r.Keys, offered)
	fmt.Fprintf(w, "acked %d records in %.3fs: %.0f records/s (%d batches, %d window waits)\n",
		r.Acked, r.Seconds, r.RecordsPerSec, r.Batches, r.WindowWaits)
	fmt.Fprintf(w, "ack latency p50 %.3f ms, p99 %.3f ms, max %.3f ms\n", r.AckP50Ms, r.AckP99Ms, r.AckMaxMs)
	fmt.Fprintf(w, "service peak RSS %.1f MiB\n", r.ServiceRSSMaxMB)
	if r.ServiceRestarts > 0 {
		fmt.Fprintf(w, "service restarted %d times; the client resent what was not acknowledged\n", r.ServiceRestarts)
	}
	if r.Verified {
		fmt.Fprintf(w, "verified: every acked record is in the logs once, sequences gap-free\n")
	} else {
		fmt.Fprintf(w, "VERIFICATION FAILED:\n")
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
}

func bench(cfg benchConfig, progress io.Writer) (*benchResult, error) {
	ctx := context.Background()
	root, err := filepath.Abs(cfg.root)
	if err != nil {
		return nil, err
	}
	sock := "unix://" + client.SocketPath(root)
	if c, err := client.Connect(ctx, client.Options{Root: root, Address: sock, NoStart: true}); err == nil {
		pid := c.ServicePID()
		c.Close()
		return nil, fmt.Errorf("a service is already running on %s (pid %d); bench needs a root of its own", root, pid)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this executable to start the service: %w", err)
	}

	lat := new(latencyHistogram)
	var lastAck atomic.Int64 // nanoseconds since start of the latest ack
	var start time.Time
	startSet := make(chan struct{})
	c, err := client.Connect(ctx, client.Options{
		Root:         root,
		Address:      sock,
		Binary:       exe,
		ServiceArgs:  benchServiceArgs(cfg),
		BatchRecords: cfg.batch,
		Linger:       cfg.linger,
		OnAck: func(runID string, l []time.Duration) {
			// Called only by the client's receiver goroutine.
			for _, d := range l {
				lat.add(d)
			}
			select {
			case <-startSet:
				lastAck.Store(int64(time.Since(start)))
			default:
			}
		},
	})
	if err != nil {
		return nil, err
	}
	closed := false
	defer func() {
		if !closed {
			c.Close()
		}
	}()
	if c.ServicePID() == 0 {
		return nil, fmt.Errorf("cannot tell the service's pid from %s", layout.Dir(root).Lock())
	}
	// The service may be killed and started again under the bench: follow
	// whichever one is current.
	watch := newServiceWatch(root, progress)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		watch.run()
	}()
	stopWatch := sync.OnceFunc(func() {
		close(watch.quit)
		<-watchDone
	})
	defer stopWatch()

	runs := make([]*client.Run, cfg.runs)
	for i := range runs {
		// No config: every acked record of the run is a history row.
		runs[i], err = c.Init(ctx, client.RunOptions{Project: "bench", Name: fmt.Sprintf("bench-%d", i)})
		if err != nil {
			return nil, err
		}
	}
	keys := make([]string, cfg.keys)
	for k := range keys {
		keys[k] = fmt.Sprintf("metric/%d", k)
	}

	// Progress for runs that take a while; the client counts acks.
	stopProgress := make(chan struct{})
	var progressDone sync.WaitGroup
	progressDone.Add(1)
	go func() {
		defer progressDone.Done()
		reportProgress(progress, c, uint64(cfg.runs*cfg.records), stopProgress)
	}()

	errs := make([]error, cfg.runs)
	var wg sync.WaitGroup
	perRun := cfg.rate / float64(cfg.runs)
	start = time.Now()
	close(startSet)
	for i, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = logRun(ctx, r, keys, cfg.records, perRun, start)
		}()
	}
	wg.Wait()
	close(stopProgress)
	progressDone.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, r := range runs {
		if err := r.Finish(ctx, 0); err != nil {
			return nil, err
		}
	}
	stopWatch()
	// Close waits for the client's receiver, so the histogram is complete
	// and no longer written to after it.
	closed = true
	if err := c.Close(); err != nil {
		return nil, err
	}
	st := c.Stats()
	elapsed := time.Duration(lastAck.Load())
	res := &benchResult{
		Runs:        cfg.runs,
		Records:     cfg.records,
		Keys:        cfg.keys,
		OfferedRate: cfg.rate,
		// Records whose ack was lost with a killed service are
		// acknowledged when the run re-attaches, without a latency: the
		// client's count has them, the histogram does not.
		Acked:       st.Acked,
		Seconds:     elapsed.Seconds(),
		AckP50Ms:    ms(lat.quantile(0.50)),
		AckP99Ms:    ms(lat.quantile(0.99)),
		AckMaxMs:    ms(lat.max),
		Batches:     st.Batches,
		WindowWaits: st.WindowWaits,
	}
	if elapsed > 0 {
		res.RecordsPerSec = float64(res.Acked) / elapsed.Seconds()
	}
	if st.Started > 0 {
		res.ServiceRestarts = st.Started - 1
	}
	if pid := watch.current(); pid > 0 {
		if err := stopService(pid, 60*time.Second); err != nil {
			return nil, err
		}
	}
	// Every service was this process's child and is reaped now (the last
	// by stopService, killed ones by the client): the kernel's largest
	// child peak covers a service killed between two samples.
	res.ServiceRSSMaxMB = max(watch.peak(), childrenPeakRSS())
	ids := make([]string, len(runs))
	for i, r := range runs {
		ids[i] = r.ID()
	}
	res.Problems = verifyBench(root, ids, cfg.records)
	res.Verified = len(res.Problems) == 0 && res.Acked == uint64(cfg.runs*cfg.records)
	if res.Acked != uint64(cfg.runs*cfg.records) {
		res.Problems = append(res.Problems, fmt.Sprintf("acked %d history rows, logged %d", res.Acked, cfg.runs*cfg.records))
	}
	return res, nil
}

// logRun logs n rows, paced at rate rows/s when rate > 0, then flushes.
func logRun(ctx context.Context, r *client.Run, keys []string, n int, rate float64, start time.Time) error {
	vals := make([]float64, len(keys))
	for i := 0; i < n; i++ {
		if rate > 0 {
			// Log what is due by now, then sleep about a millisecond: paced
			// to the millisecond rather than in bursts.
			if due := int(time.Since(start).Seconds() * rate); i >= due {
				next := start.Add(time.Duration(float64(i+1) / rate * float64(time.Second)))
				time.Sleep(min(time.Until(next), time.Millisecond))
				i--
				continue
			}
		}
		for k := range vals {
			vals[k] = float64(i) * float64(k+1) / 1000
		}
		if err := r.LogFloats(int64(i), keys, vals); err != nil {
			return fmt.Errorf("run %s: %w", r.ID(), err)
		}
	}
	return r.Flush(ctx)
}

func reportProgress(w io.Writer, c *client.Client, total uint64, stop <-chan struct{}) {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	every := 5 * time.Second
	if tty {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	begin := time.Now()
	printed := false
	for {
		select {
		case <-stop:
			if printed && tty {
				fmt.Fprintln(w)
			}
			return
		case <-t.C:
			acked := c.Stats().Acked
			line := fmt.Sprintf("bench: %d/%d acked, %.0f records/s", acked, total, float64(acked)/time.Since(begin).Seconds())
			if tty {
				fmt.Fprintf(w, "\r%s ", line)
			} else {
				fmt.Fprintln(w, line)
			}
			printed = true
		}
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// serviceWatch follows the service of a root through restarts: it reads the
// pid in ROOT/service.lock and that process's peak memory every
// serviceWatchEvery, until quit is closed.
type serviceWatch struct {
	root     string
	progress io.Writer
	quit     chan struct{}

	mu     sync.Mutex // protects pid and peakMB
	pid    int        // the service the lock file names, 0 before one does
	peakMB float64    // the largest VmHWM read from any of them
}

// serviceWatchEvery is how often the watch looks. A service that lives less
// than this may go unseen; its memory still counts through the kernel's
// account of reaped children (childrenPeakRSS).
const serviceWatchEvery = 50 * time.Millisecond

func newServiceWatch(root string, progress io.Writer) *serviceWatch {
	w := &serviceWatch{root: root, progress: progress, quit: make(chan struct{})}
	w.sample()
	return w
}

// run samples until quit is closed, then once more.
func (w *serviceWatch) run() {
	t := time.NewTicker(serviceWatchEvery)
	defer t.Stop()
	for {
		select {
		case <-w.quit:
			w.sample()
			return
		case <-t.C:
			w.sample()
		}
	}
}

// sample notes a new service in the lock file and reads the current one's
// peak memory. A killed service's lock file stays behind naming it until
// the next service takes the lock, and a dead or reaped process has no
// memory to read: both are skipped, not errors.
func (w *serviceWatch) sample() {
	info, err := client.ReadLock(w.root)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil && info.PID > 0 && info.PID != w.pid {
		if w.pid != 0 {
			fmt.Fprintf(w.progress, "bench: service pid %d is gone; pid %d took over\n", w.pid, info.PID)
		}
		w.pid = info.PID
	}
	if w.pid == 0 {
		return
	}
	if mb, err := peakRSS(w.pid); err == nil {
		w.peakMB = max(w.peakMB, mb)
	}
}

// current returns the pid of the service the lock file names.
func (w *serviceWatch) current() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pid
}

// peak returns the largest peak memory read from any service, MiB.
func (w *serviceWatch) peak() float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.peakMB
}

// childrenPeakRSS returns the largest peak resident memory of this process's
// reaped children in MiB (getrusage RUSAGE_CHILDREN; Linux counts kB), 0
// when it cannot tell.
func childrenPeakRSS() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024
}

// peakRSS returns the peak resident memory of pid in MiB (VmHWM).
func peakRSS(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read service memory: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				return 0, fmt.Errorf("read service memory: VmHWM %q: %w", v, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("read service memory: no VmHWM in /proc/%d/status", pid)
}

// stopService sends SIGTERM and waits for the process to exit, so its logs
// are closed before they are read. The service is usually this process's
// child (the client started it): reap it, or it lingers as a zombie that
// still answers signal 0.
func stopService(pid int, timeout time.Duration) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); errors.Is(err, syscall.ESRCH) {
		return nil // killed, and reaped by the client
	} else if err != nil {
		return fmt.Errorf("stop service pid %d: %w", pid, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		var ws syscall.WaitStatus
		wpid, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		switch {
		case wpid == pid:
			return nil
		case errors.Is(err, syscall.ECHILD):
			// Not our child: it is gone once signal 0 fails.
			if syscall.Kill(pid, 0) != nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stop service pid %d: still running %s after SIGTERM", pid, timeout)
		}
		// No event tells a non-child's exit; poll.
		time.Sleep(10 * time.Millisecond)
	}
}

// verifyBench reads every run's log and returns what is wrong: each of
// steps 0..n-1 must be there exactly once and sequences must be gap-free.
func verifyBench(root string, ids []string, n int) []string {
	var problems []string
	for _, id := range ids {
		path := layout.Dir(root).Log(id)
		if err := verifyBenchRun(path, n); err != nil {
			problems = append(problems, fmt.Sprintf("run %s: %v", id, err))
		}
	}
	return problems
}

func verifyBenchRun(path string, n int) error {
	l, err := wal.Open(path, wal.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer l.Close()
	seen := make([]uint64, (n+63)/64)
	var expect uint64 = 1
	rows, dups := 0, 0
	err = l.Scan(1, func(seq uint64, data []byte) error {
		if seq != expect {
			return fmt.Errorf("sequence gap: expected %d, found %d", expect, seq)
		}
		expect++
		step, ok, err := historyStep(data)
		if err != nil {
			return fmt.Errorf("seq %d: %w", seq, err)
		}
		if !ok {
			return nil
		}
		if step < 0 || step >= int64(n) {
			return fmt.Errorf("seq %d: step %d out of range 0..%d", seq, step, n-1)
		}
		w, bit := step/64, uint64(1)<<(step%64)
		if seen[w]&bit != 0 {
			dups++
		}
		seen[w] |= bit
		rows++
		return nil
	})
	if err != nil {
		return err
	}
	missing := 0
	for i := 0; i < n; i++ {
		if seen[i/64]&(1<<(i%64)) == 0 {
			missing++
		}
	}
	if dups > 0 || missing > 0 {
		return fmt.Errorf("%d history rows: %d steps missing, %d duplicated", rows, missing, dups)
	}
	if !l.Finished() {
		return fmt.Errorf("no exit record after %d records", l.LastSeq())
	}
	return nil
}

// historyStep returns the step of an encoded history record, and false for
// records of other kinds. It reads only the fields it needs.
func historyStep(b []byte) (int64, bool, error) {
	h, err := wire.ParseHeader(b)
	if err != nil || h.Kind != wire.KindHistory {
		return 0, false, err
	}
	step, err := wire.Step(h.Payload)
	return step, err == nil, err
}

// latencyHistogram records durations in log-linear buckets: 32 per power of
// two, so a quantile is within about 3% of the truth, in fixed memory
// whatever the number of records.
type latencyHistogram struct {
	buckets [60 * 32]uint64 // covers every uint64: 58 is the largest shift
	count   uint64
	max     time.Duration
}

func (h *latencyHistogram) add(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.buckets[bucketOf(uint64(d))]++
	h.count++
	if d > h.max {
		h.max = d
	}
}

func bucketOf(v uint64) int {
	if v < 32 {
		return int(v)
	}
	e := bits.Len64(v) - 6 // keep the top five bits below the leading one
	return (e+1)*32 + int(v>>uint(e))&31
}

// bucketHigh returns the largest value of bucket i.
func bucketHigh(i int) uint64 {
	if i < 32 {
		return uint64(i)
	}
	e := i/32 - 1
	return (uint64(32+i%32+1) << uint(e)) - 1
}

// quantile returns the upper bound of the bucket holding quantile q.
func (h *latencyHistogram) quantile(q float64) time.Duration {
	if h.count == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.count)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, n := range h.buckets {
		seen += n
		if seen >= rank {
			return min(time.Duration(bucketHigh(i)), h.max)
		}
	}
	return h.max
}

// benchServiceArgs are the flags bench gives the service it starts.
func benchServiceArgs(cfg benchConfig) []string {
	if cfg.metricsListen == "" {
		return nil
	}
	return []string{"--metrics-listen", cfg.metricsListen}
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/runlog/runlog/loadgen"
	"github.com/runlog/runlog/root"
)

func cmdBench(args []string) int { return runBench(args, os.Stdout, os.Stderr) }

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
	var o loadgen.Options
	var rootFlag string
	var asJSON bool
	fs.StringVar(&rootFlag, "root", "", "directory for the service and the runs (default: a temporary one)")
	fs.IntVar(&o.Runs, "runs", 1, "runs logging in parallel")
	fs.IntVar(&o.Records, "records", 100000, "history rows per run")
	fs.IntVar(&o.Keys, "keys", 10, "float metrics per row")
	fs.Float64Var(&o.Rate, "rate", 0, "total offered records/s over all runs (0: as fast as possible)")
	fs.IntVar(&o.BatchRecords, "batch", 0, "records per Publish batch (0: the client's default)")
	fs.DurationVar(&o.Linger, "linger", 0, "how long a partial batch waits while another is in flight (0: the client's default)")
	fs.BoolVar(&asJSON, "json", false, "print one JSON object instead of lines")
	metricsListen := fs.String("metrics-listen", "", "start the service with --metrics-listen `HOST:PORT` (to measure what serving metrics costs)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 || o.Runs < 1 || o.Records < 1 || o.Keys < 1 || o.Rate < 0 {
		fmt.Fprintln(stderr, "runlog bench: --runs, --records and --keys must be positive, --rate not negative, no arguments")
		return 2
	}
	if rootFlag == "" {
		dir, err := os.MkdirTemp("", "runlog-bench-")
		if err != nil {
			fmt.Fprintf(stderr, "runlog bench: %v\n", err)
			return 1
		}
		defer os.RemoveAll(dir)
		rootFlag = dir
	}
	var err error
	if o.Root, err = root.Resolve(rootFlag); err != nil {
		fmt.Fprintf(stderr, "runlog bench: %v\n", err)
		return 1
	}
	if o.Binary, err = os.Executable(); err != nil {
		fmt.Fprintf(stderr, "runlog bench: find this executable to start the service: %v\n", err)
		return 1
	}
	if *metricsListen != "" {
		o.ServiceArgs = []string{"--metrics-listen", *metricsListen}
	}
	o.OnRestart = func(oldPID, newPID int) {
		fmt.Fprintf(stderr, "bench: service pid %d is gone; pid %d took over\n", oldPID, newPID)
	}
	endProgress := benchProgress(&o, stderr)
	res, err := loadgen.Run(context.Background(), o)
	endProgress()
	if err != nil {
		fmt.Fprintf(stderr, "runlog bench: %v\n", err)
		return 1
	}
	if asJSON {
		if code := writeIndentedJSON(stdout, stderr, res); code != 0 {
			return code
		}
	} else {
		printBench(stdout, res)
	}
	if !res.Verified {
		return 1
	}
	return 0
}

// benchProgress prints a progress line for runs that take a while: every
// second over one line of a terminal, else every five seconds a line. The
// returned function ends the terminal's line.
func benchProgress(o *loadgen.Options, w io.Writer) (end func()) {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	o.ProgressEvery = 5 * time.Second
	if tty {
		o.ProgressEvery = time.Second
	}
	total := uint64(o.Runs * o.Records)
	printed := false
	o.Progress = func(acked uint64, elapsed time.Duration) {
		line := fmt.Sprintf("bench: %d/%d acked, %.0f records/s", acked, total, float64(acked)/elapsed.Seconds())
		if tty {
			fmt.Fprintf(w, "\r%s ", line)
		} else {
			fmt.Fprintln(w, line)
		}
		printed = true
	}
	return func() {
		if printed && tty {
			fmt.Fprintln(w)
		}
	}
}

func printBench(w io.Writer, r *loadgen.Result) {
	offered := "as fast as possible"
	if r.OfferedRate > 0 {
		offered = fmt.Sprintf("offered %.0f records/s", r.OfferedRate)
	}
	fmt.Fprintf(w, "runs %d x %d records of %d keys, %s\n", r.Runs, r.Records, r.Keys, offered)
	fmt.Fprintf(w, "acked %d records in %.3fs: %.0f records/s (%d batches, %d window waits)\n",
		r.Acked, r.Seconds, r.RecordsPerSec, r.Batches, r.WindowWaits)
	fmt.Fprintf(w, "ack latency p50 %.3f ms, p99 %.3f ms, max %.3f ms\n", r.AckP50Ms, r.AckP99Ms, r.AckMaxMs)
	fmt.Fprintf(w, "service peak RSS %.1f MiB (sampled peaks: anonymous %.1f MiB, file-backed %.1f MiB)\n",
		r.ServiceRSSMaxMB, r.ServiceAnonMaxMB, r.ServiceFileMaxMB)
	if r.ServiceCPUSeconds > 0 && r.Acked > 0 {
		fmt.Fprintf(w, "service CPU %.2fs: %.2f µs per acked record\n", r.ServiceCPUSeconds, r.ServiceCPUSeconds*1e6/float64(r.Acked))
	}
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

package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/runlog/runlog/local"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/replay"
	"github.com/runlog/runlog/root"
)

const replayUsage = `Usage: runlog replay RUN [--root DIR] [flags]
       runlog replay --verify --all [--root DIR]

Reads a run's log back. RUN is a run id under ROOT/runs or the path of a
wal.bolt file. ROOT is --root, else $RUNLOG_DIR, else ~/.runlog. A run that a
service holds is read through that service.

Output (one of):
  (default)           one line per record: seq, time, client, kind, payload
  --json              JSON lines, one record per line, lossless (docs/replay.md)
  --state [--at SEQ]  the run as of the end of its log or as of seq SEQ
  --history [--csv]   the live history as CSV with a step column (--keys a,b;
                      --at SEQ); with --json, one row per line
  --verify            check the log; exit status 1 when anything is wrong

Flags:
`

// replayOpts are the parsed flags of runlog replay.
type replayOpts struct {
	dir            root.Dir
	run            string
	rootSet        bool
	json, follow   bool
	state, history bool
	csv, verify    bool
	all            bool
	at             uint64
	keys           []string
	filter         replay.Filter
	tolerance      time.Duration
}

func cmdReplay(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return replayMain(ctx, args, os.Stdout, os.Stderr)
}

// replayMain runs the command with its output on stdout and stderr and
// returns the exit status: 0 done, 1 a problem with the run or its log, 2 bad
// usage.
func replayMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseReplayFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "runlog replay: %v\n", err)
		return 2
	}
	out := bufio.NewWriterSize(stdout, 256<<10)
	defer out.Flush()
	if o.verify && o.all {
		return replayVerifyAll(ctx, o, out, stderr)
	}
	run, err := local.Open(ctx, local.ParseRef(o.run, o.dir, o.rootSet), local.Options{})
	if err != nil {
		fmt.Fprintf(stderr, "runlog replay: %v\n", err)
		return 1
	}
	defer run.Close()
	switch {
	case o.verify:
		return replayVerify(ctx, run, o, out, stderr)
	case o.state:
		err = replayState(run, o, out)
	case o.history:
		err = replayHistory(run, o, out)
	case o.follow:
		err = replayFollow(ctx, run, o, out, stderr)
	default:
		err = replayRecords(run, o, out)
	}
	if err != nil {
		out.Flush()
		fmt.Fprintf(stderr, "runlog replay: %s: %v\n", run.ID, err)
		return 1
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintf(stderr, "runlog replay: write output: %v\n", err)
		return 1
	}
	return 0
}

func parseReplayFlags(args []string, stderr io.Writer) (*replayOpts, error) {
	o := &replayOpts{}
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, replayUsage)
		fs.PrintDefaults()
	}
	var since, until, kinds, keys, rootFlag string
	fs.StringVar(&rootFlag, "root", "", "runlog root `DIR` (default $RUNLOG_DIR or ~/.runlog)")
	fs.BoolVar(&o.json, "json", false, "JSON lines instead of text")
	fs.BoolVar(&o.follow, "follow", false, "keep printing records as the run writes them")
	fs.BoolVar(&o.state, "state", false, "print the run's state folded from its log")
	fs.Uint64Var(&o.at, "at", 0, "with --state or --history: as of this `SEQ`")
	fs.BoolVar(&o.history, "history", false, "print the live history")
	fs.BoolVar(&o.csv, "csv", false, "with --history: CSV (the default for --history)")
	fs.StringVar(&keys, "keys", "", "with --history: only these comma-separated `KEYS`, in this column order")
	fs.BoolVar(&o.verify, "verify", false, "check the log and report every problem")
	fs.BoolVar(&o.all, "all", false, "with --verify: every run under the root")
	fs.DurationVar(&o.tolerance, "tolerance", time.Second, "with --verify: how far a record's time may go back")
	fs.Uint64Var(&o.filter.From, "from", 0, "first `SEQ` to print")
	fs.Uint64Var(&o.filter.To, "to", 0, "last `SEQ` to print")
	fs.StringVar(&since, "since", "", "only records at or after `TIME` (RFC 3339, or YYYY-MM-DD in UTC)")
	fs.StringVar(&until, "until", "", "only records at or before `TIME`")
	fs.StringVar(&kinds, "kind", "", "only these comma-separated `KINDS` (run,config,history,summary,output,file,stats,metric,alert,rewind,exit)")
	fs.StringVar(&o.filter.Client, "client", "", "only records of client `ID`")

	// Flags may come before and after RUN.
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "root" {
			o.rootSet = true
		}
	})
	if o.filter.Since, err = replay.ParseTime(since); err != nil {
		return nil, fmt.Errorf("--since: %w", err)
	}
	if o.filter.Until, err = replay.ParseTime(until); err != nil {
		return nil, fmt.Errorf("--until: %w", err)
	}
	for _, k := range replaySplit(kinds) {
		kind, err := replay.ParseKind(k)
		if err != nil {
			return nil, fmt.Errorf("--kind: %w", err)
		}
		o.filter.Kinds = append(o.filter.Kinds, kind)
	}
	o.keys = replaySplit(keys)

	modes := 0
	for _, m := range []bool{o.state, o.history, o.verify, o.follow} {
		if m {
			modes++
		}
	}
	filtered := o.filter.From != 0 || o.filter.To != 0 || since != "" || until != "" || kinds != "" || o.filter.Client != ""
	switch {
	case modes > 1:
		return nil, errors.New("--state, --history, --verify and --follow go alone")
	case o.all && !o.verify:
		return nil, errors.New("--all goes with --verify")
	case o.at != 0 && !o.state && !o.history:
		return nil, errors.New("--at goes with --state or --history")
	case (o.csv || len(o.keys) > 0) && !o.history:
		return nil, errors.New("--csv and --keys go with --history")
	case o.csv && o.json:
		return nil, errors.New("--csv and --json: choose one")
	case filtered && (o.state || o.history || o.verify):
		return nil, errors.New("the record filters (--from, --to, --since, --until, --kind, --client) do not apply to --state, --history or --verify")
	case o.filter.From != 0 && o.filter.To != 0 && o.filter.To < o.filter.From:
		return nil, fmt.Errorf("--to %d is before --from %d", o.filter.To, o.filter.From)
	case o.all && len(pos) > 0:
		return nil, errors.New("--verify --all takes no RUN")
	case !o.all && len(pos) != 1:
		fs.Usage()
		return nil, errors.New("want exactly one RUN")
	}
	if len(pos) == 1 {
		o.run = pos[0]
	}
	if o.dir, err = root.Resolve(rootFlag); err != nil {
		return nil, err
	}
	return o, nil
}

func replaySplit(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// replayRecords writes the records that pass the filter, as text or JSON.
func replayRecords(src replay.Source, o *replayOpts, w *bufio.Writer) error {
	var buf []byte
	if o.json {
		// Straight from the encoded records: the export of long runs.
		return replay.EncodedRecords(src, o.filter, func(seq uint64, data []byte) error {
			var err error
			if buf, err = replay.AppendJSONEncoded(buf[:0], data); err != nil {
				return fmt.Errorf("record %d does not decode: %w", seq, err)
			}
			buf = append(buf, '\n')
			_, err = w.Write(buf)
			return err
		})
	}
	return replay.Records(src, o.filter, func(r *runlogv1.Record) error {
		buf = replayAppendRecord(buf[:0], r, o.json)
		_, err := w.Write(buf)
		return err
	})
}

func replayAppendRecord(b []byte, r *runlogv1.Record, asJSON bool) []byte {
	if asJSON {
		b = replay.AppendJSON(b, r)
	} else {
		b = replay.AppendText(b, r)
	}
	return append(b, '\n')
}

// replayFollow prints the run's records and then new ones as they are written.
// A service on the run's root is asked first, since it is the writer; with
// none, the file is printed to its end.
func replayFollow(ctx context.Context, run *local.Run, o *replayOpts, w *bufio.Writer, stderr io.Writer) error {
	// The same readers as for the whole log, over a stream that goes on
	// until the exit record (or --to), flushed at the end of each chunk so
	// that a reader sees each batch as it comes.
	t, ok := run.Follow(ctx, o.filter.To, w.Flush)
	if !ok {
		if err := replayRecords(run, o, w); err != nil {
			return err
		}
		if !run.File.Finished() {
			w.Flush()
			fmt.Fprintf(stderr, "runlog replay: run %s has no exit record and no service runs on %s: no process is writing it\n", run.ID, run.Root)
		}
		return nil
	}
	err := replayRecords(t, o, w)
	switch {
	case errors.Is(err, context.Canceled):
		return nil
	case err != nil:
		return err
	case t.Finished() || o.filter.To != 0 && t.LastSeq() >= o.filter.To:
		return nil
	}
	// The service ends a follow at the end of a run it is not writing.
	w.Flush()
	fmt.Fprintf(stderr, "runlog replay: run %s has no exit record after seq %d and the service on %s is not writing it\n", run.ID, t.LastSeq(), run.Root)
	return nil
}

// replayState folds the run (up to --at) and prints it.
func replayState(run *local.Run, o *replayOpts, w *bufio.Writer) error {
	s, err := replay.Fold(run, run.ID, o.at)
	if err != nil {
		return err
	}
	if !s.HistoryRowsExact() {
		n, err := replay.CountHistory(run, s.LastSeq())
		if err != nil {
			return err
		}
		s.SetHistoryRows(n)
	}
	if o.json {
		w.Write(append(replay.AppendStateJSON(nil, s), '\n'))
		return nil
	}
	return replay.WriteStateText(w, s)
}

// replayHistory writes the live history up to --at as CSV or JSON lines.
func replayHistory(run *local.Run, o *replayOpts, w *bufio.Writer) error {
	opts := replay.HistoryOptions{Keys: o.keys, To: o.at}
	if !o.json {
		return replay.WriteHistoryCSV(w, run, opts)
	}
	var buf []byte
	return replay.History(run, opts, func(r replay.Row) error {
		buf = append(replay.AppendRowJSON(buf[:0], r), '\n')
		_, err := w.Write(buf)
		return err
	})
}

// replayVerify checks one run and prints each problem and a summary line.
func replayVerify(ctx context.Context, run *local.Run, o *replayOpts, w *bufio.Writer, stderr io.Writer) int {
	start := time.Now()
	res, err := run.Verify(ctx, o.tolerance)
	if err != nil {
		w.Flush()
		fmt.Fprintf(stderr, "runlog replay: verify %s: %v\n", run.ID, err)
		return 1
	}
	for _, p := range res.GetProblems() {
		fmt.Fprintf(w, "%s\n", replayProblem(p))
	}
	fmt.Fprintf(w, "%s\n", replayVerifySummary(res, time.Since(start), run.ThroughService()))
	if len(res.GetProblems()) > 0 {
		return 1
	}
	return 0
}

func replayProblem(p *runlogv1.Problem) string {
	if p.GetSeq() == 0 {
		return fmt.Sprintf("%s: %s", p.GetKind(), p.GetMessage())
	}
	return fmt.Sprintf("seq %d: %s: %s", p.GetSeq(), p.GetKind(), p.GetMessage())
}

func replayVerifySummary(res *runlogv1.VerifyResponse, took time.Duration, viaService bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "checked %d records in %s (%s records/s)", res.GetRecords(), replayDuration(took), replayRate(res.GetRecords(), took))
	if viaService {
		b.WriteString(" through the service")
	}
	if n := len(res.GetProblems()); n == 0 {
		fmt.Fprintf(&b, ": clean, last good seq %d", res.GetLastGoodSeq())
	} else {
		fmt.Fprintf(&b, ": %d problems, ", n)
		if res.GetFirstBadSeq() != 0 {
			fmt.Fprintf(&b, "first bad seq %d, ", res.GetFirstBadSeq())
		}
		fmt.Fprintf(&b, "last good seq %d", res.GetLastGoodSeq())
	}
	return b.String()
}

func replayDuration(d time.Duration) string {
	if d < time.Second {
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func replayRate(n uint64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	r := float64(n) / d.Seconds()
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.2fM", r/1e6)
	case r >= 1e3:
		return fmt.Sprintf("%.1fk", r/1e3)
	}
	return fmt.Sprintf("%.0f", r)
}

// replayVerifyAll checks every run under the root and prints a summary.
func replayVerifyAll(ctx context.Context, o *replayOpts, w *bufio.Writer, stderr io.Writer) int {
	start := time.Now()
	var records uint64
	clean, damaged, unreadable := 0, 0, 0
	err := local.VerifyAll(ctx, o.dir, o.tolerance, func(v local.Verified) error {
		if v.Err != nil {
			unreadable++
			fmt.Fprintf(w, "%s: cannot verify: %v\n", v.ID, v.Err)
			return nil
		}
		res := v.Result
		records += res.GetRecords()
		for _, p := range res.GetProblems() {
			fmt.Fprintf(w, "%s: %s\n", v.ID, replayProblem(p))
		}
		via := ""
		if v.ThroughService {
			via = " (through the service)"
		}
		if len(res.GetProblems()) == 0 {
			clean++
			fmt.Fprintf(w, "%s: clean, %d records%s\n", v.ID, res.GetRecords(), via)
		} else {
			damaged++
			fmt.Fprintf(w, "%s: %d problems in %d records, first bad seq %d, last good seq %d%s\n",
				v.ID, len(res.GetProblems()), res.GetRecords(), res.GetFirstBadSeq(), res.GetLastGoodSeq(), via)
		}
		return nil
	})
	if err != nil {
		w.Flush()
		fmt.Fprintf(stderr, "runlog replay: %v\n", err)
		return 1
	}
	took := time.Since(start)
	fmt.Fprintf(w, "checked %d runs, %d records in %s (%s records/s): %d clean, %d with problems, %d unreadable\n",
		clean+damaged+unreadable, records, replayDuration(took), replayRate(records, took), clean, damaged, unreadable)
	if damaged+unreadable > 0 {
		return 1
	}
	return 0
}

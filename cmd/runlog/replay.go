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
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/runlog/runlog/client"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/replay"
	"github.com/runlog/runlog/wal"
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
	root, run      string
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
	run, err := replayOpen(ctx, o.root, o.run, o.rootSet)
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
		err = replayRecords(run.src, o, out)
	}
	if err != nil {
		out.Flush()
		fmt.Fprintf(stderr, "runlog replay: %s: %v\n", run.id, err)
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
	var since, until, kinds, keys string
	fs.StringVar(&o.root, "root", "", "runlog root `DIR` (default $RUNLOG_DIR or ~/.runlog)")
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
	if o.filter.Since, err = replayParseTime(since); err != nil {
		return nil, fmt.Errorf("--since: %w", err)
	}
	if o.filter.Until, err = replayParseTime(until); err != nil {
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
	if o.root == "" {
		if o.root, err = client.DefaultRoot(); err != nil {
			return nil, err
		}
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

func replayParseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: want RFC 3339 (2026-11-27T16:42:13Z) or a date (2026-11-27)", s)
}

// replayRun is an opened run: the log itself, or the service that holds it.
type replayRun struct {
	id, path, root string
	src            replay.Source
	local          *wal.Log       // nil when read through the service
	svc            *replayService // nil when read from the file
}

func (r *replayRun) Close() {
	if r.local != nil {
		r.local.Close()
	}
	if r.svc != nil {
		r.svc.conn.Close()
	}
}

// replayLocate turns RUN into a run id, its log's path and the root it lives in.
// A path to a file is taken as is; its root is the directory above "runs"
// when it lives in one, else the given root.
func replayLocate(root, run string, rootSet bool) (id, path, runRoot string) {
	if strings.HasSuffix(run, ".bolt") || strings.ContainsRune(run, os.PathSeparator) {
		if fi, err := os.Stat(run); err == nil && !fi.IsDir() {
			path, _ = filepath.Abs(run)
			dir := filepath.Dir(path)
			id = filepath.Base(dir)
			runRoot = root
			if parent := filepath.Dir(dir); filepath.Base(parent) == "runs" && !rootSet {
				runRoot = filepath.Dir(parent)
			}
			return id, path, runRoot
		}
	}
	return run, filepath.Join(root, "runs", run, "wal.bolt"), root
}

// replayOpen opens a run's log read-only, or, when another process holds it,
// connects to the service on the run's root.
func replayOpen(ctx context.Context, root, run string, rootSet bool) (*replayRun, error) {
	id, path, runRoot := replayLocate(root, run, rootSet)
	r := &replayRun{id: id, path: path, root: runRoot}
	l, err := wal.Open(path, wal.Options{ReadOnly: true, LockTimeout: 100 * time.Millisecond})
	switch {
	case err == nil:
		r.local, r.src = l, l
		return r, nil
	case errors.Is(err, wal.ErrNotExist):
		return nil, fmt.Errorf("no run %s: %s does not exist", id, path)
	case !errors.Is(err, wal.ErrLocked):
		return nil, err
	}
	svc, err := replayDial(ctx, runRoot, id)
	if err != nil {
		return nil, replayLockedError(runRoot, id, path, err)
	}
	svc.path = path
	r.svc, r.src = svc, svc
	return r, nil
}

// replayService reads one run through the service that holds it.
type replayService struct {
	// ctx bounds Scan, which has no context of its own (replay.Source).
	ctx   context.Context
	conn  *grpc.ClientConn
	c     runlogv1.RunlogClient
	runID string
	path  string // the run's log, named in errors
}

var _ replay.Source = (*replayService)(nil)

// replayDial connects to the service on root and checks that it serves the
// run by reading its first record.
func replayDial(ctx context.Context, root, runID string) (*replayService, error) {
	sock := client.SocketPath(root)
	if _, err := os.Stat(sock); err != nil {
		return nil, fmt.Errorf("no service socket %s", sock)
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
		// A read chunk holds at least one record, and a record may be large.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(128<<20)))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", sock, err)
	}
	s := &replayService{ctx: ctx, conn: conn, c: runlogv1.NewRunlogClient(conn), runID: runID,
		path: filepath.Join(root, "runs", runID, "wal.bolt")}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	st, err := s.c.Read(pctx, &runlogv1.ReadRequest{RunId: runID, FromSeq: 1, ToSeq: 1, Encoded: true})
	if err == nil {
		_, err = st.Recv()
	}
	if err != nil && !errors.Is(err, io.EOF) {
		conn.Close()
		return nil, fmt.Errorf("service on %s: %w", sock, err)
	}
	return s, nil
}

// Scan reads the run to the end of its log through the service.
func (s *replayService) Scan(from uint64, fn func(seq uint64, data []byte) error) error {
	return (&replayStream{svc: s}).Scan(from, fn)
}

// replayStream is one Read of a run through the service, as a replay.Source.
// It asks for the records as the log stores them, so that the readers take
// the same paths through the service as through the file (EncodedRecords
// and AppendJSONEncoded, ApplyEncoded), and the output is the same bytes.
// The service sends consecutive seqs and ends the stream with DATA_LOSS at
// a damaged record, after the records before it.
type replayStream struct {
	svc    *replayService
	to     uint64       // the last seq to ask for; 0 leaves the end open
	follow bool         // after the end, wait for new records until the run finishes
	chunk  func() error // called after each response's records; may be nil

	// After Scan: the last record it passed on, as stored, and its seq.
	last    []byte
	lastSeq uint64
}

// Scan calls fn with each record from seq from. It returns nil at the end of
// the stream, the context's error once the context of the service is done,
// and a *wal.CorruptError naming the seq where the service found damage.
func (st *replayStream) Scan(from uint64, fn func(seq uint64, data []byte) error) error {
	s := st.svc
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	from = max(from, 1)
	rs, err := s.c.Read(ctx, &runlogv1.ReadRequest{RunId: s.runID, FromSeq: from, ToSeq: st.to, Follow: st.follow, Encoded: true})
	if err != nil {
		return fmt.Errorf("read through the service: %w", err)
	}
	next := from
	for {
		resp, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return s.readError(next, err)
		}
		recs := resp.GetEncoded()
		if len(recs) == 0 && len(resp.GetRecords()) > 0 {
			// A service that predates encoded reads sends them decoded.
			if recs, err = replayMarshal(resp.GetRecords()); err != nil {
				return fmt.Errorf("read through the service: record %d: %w", next, err)
			}
		}
		for _, data := range recs {
			// A record that does not parse is left to the reader, which
			// reports it as it would from the file.
			if seq, ok := replayRecordSeq(data); ok && seq != next {
				return &wal.CorruptError{Path: s.path, Seq: next, Err: fmt.Errorf("the service sent seq %d in its place", seq)}
			}
			if err := fn(next, data); err != nil {
				return err
			}
			next++
		}
		if n := len(recs); n > 0 {
			st.last, st.lastSeq = append(st.last[:0], recs[n-1]...), next-1
		}
		if st.chunk != nil {
			if err := st.chunk(); err != nil {
				return err
			}
		}
	}
}

// finished reports whether the last record Scan passed on is the exit record.
func (st *replayStream) finished() bool {
	if st.lastSeq == 0 {
		return false
	}
	e, err := replay.DecodeEvent(st.last)
	return err == nil && e.Kind() == replay.KindExit
}

// readError turns an error that ended a Read before seq next into the
// error of the same event on the file.
func (s *replayService) readError(next uint64, err error) error {
	switch st := status.Convert(err); {
	case s.ctx.Err() != nil && st.Code() == codes.Canceled:
		return s.ctx.Err()
	case st.Code() == codes.DataLoss:
		// The records before next came through; next is the damaged one.
		return &wal.CorruptError{Path: s.path, Seq: next, Err: fmt.Errorf("reported by the service: %s", st.Message())}
	}
	return fmt.Errorf("read through the service from seq %d: %w", next, err)
}

// replayMarshal encodes decoded records.
func replayMarshal(recs []*runlogv1.Record) ([][]byte, error) {
	out := make([][]byte, len(recs))
	for i, r := range recs {
		data, err := proto.Marshal(r)
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

// replayRecordSeq returns the seq field of an encoded Record; ok is false
// when the record has none or does not parse that far.
func replayRecordSeq(data []byte) (seq uint64, ok bool) {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return 0, false
		}
		data = data[n:]
		if num == 1 && typ == protowire.VarintType {
			v, m := protowire.ConsumeVarint(data)
			return v, m >= 0
		}
		m := protowire.ConsumeFieldValue(num, typ, data)
		if m < 0 {
			return 0, false
		}
		data = data[m:]
	}
	return 0, false
}

// replayLockedError explains who holds a run's log when no service answers for it.
func replayLockedError(root, id, path string, cause error) error {
	pid, cmdline := replayLockHolder(path)
	info, lockErr := client.ReadLock(root)
	var b strings.Builder
	fmt.Fprintf(&b, "run %s is locked by another process", id)
	switch {
	case pid != 0:
		fmt.Fprintf(&b, ": pid %d", pid)
		if cmdline != "" {
			fmt.Fprintf(&b, " (%s)", cmdline)
		}
	case lockErr == nil && info.PID != 0:
		fmt.Fprintf(&b, ", probably the runlog service pid %d (from %s)", info.PID, filepath.Join(root, "service.lock"))
	}
	fmt.Fprintf(&b, ", and no service answers for it (%v). ", cause)
	switch {
	case lockErr == nil && info.PID != 0 && (pid == 0 || pid == info.PID):
		fmt.Fprintf(&b, "The service of %s may be starting or stuck: retry, or stop it (kill %d) and read the file directly.", root, info.PID)
	case pid != 0:
		fmt.Fprintf(&b, "Wait for pid %d to close %s, or stop it (kill %d). If it is a service of another root, pass that --root.", pid, path, pid)
	default:
		fmt.Fprintf(&b, "Find the holder with `fuser %s` and wait for it or stop it.", path)
	}
	return errors.New(b.String())
}

// replayLockHolder finds the process holding a flock on path in /proc/locks
// (Linux); it returns 0 when it cannot tell.
func replayLockHolder(path string) (int, string) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, ""
	}
	locks, err := os.ReadFile("/proc/locks")
	if err != nil {
		return 0, ""
	}
	dev := uint64(st.Dev)
	major := (dev>>8)&0xfff | (dev>>32)&^uint64(0xfff)
	minor := dev&0xff | (dev>>12)&^uint64(0xff)
	want := fmt.Sprintf("%02x:%02x:%d", major, minor, st.Ino)
	for _, line := range strings.Split(string(locks), "\n") {
		f := strings.Fields(line)
		// "1: FLOCK ADVISORY WRITE 1234 08:01:5678 0 EOF"; waiters have "->".
		if len(f) < 6 || f[1] == "->" || f[5] != want {
			continue
		}
		pid, err := strconv.Atoi(f[4])
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		return pid, strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
	}
	return 0, ""
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
func replayFollow(ctx context.Context, run *replayRun, o *replayOpts, w *bufio.Writer, stderr io.Writer) error {
	svc := run.svc
	if svc == nil {
		// The file was free, but a service may still be writing the run:
		// it opens a log only while a client has it open.
		if s, err := replayDial(ctx, run.root, run.id); err == nil {
			s.path = run.path
			svc = s
			defer s.conn.Close()
			// Release the file so that the service can open the run.
			run.local.Close()
			run.local = nil
		}
	}
	if svc == nil {
		if err := replayRecords(run.src, o, w); err != nil {
			return err
		}
		if !run.local.Finished() {
			w.Flush()
			fmt.Fprintf(stderr, "runlog replay: run %s has no exit record and no service runs on %s: no process is writing it\n", run.id, run.root)
		}
		return nil
	}
	// The same readers as for the whole log, over a stream that goes on
	// until the exit record (or --to), flushed at the end of each chunk so
	// that a reader sees each batch as it comes.
	st := &replayStream{svc: svc, to: o.filter.To, follow: true, chunk: w.Flush}
	err := replayRecords(st, o, w)
	switch {
	case errors.Is(err, context.Canceled):
		return nil
	case err != nil:
		return err
	case st.finished() || o.filter.To != 0 && st.lastSeq >= o.filter.To:
		return nil
	}
	// The service ends a follow at the end of a run it is not writing.
	w.Flush()
	fmt.Fprintf(stderr, "runlog replay: run %s has no exit record after seq %d and the service on %s is not writing it\n", run.id, st.lastSeq, run.root)
	return nil
}

// replayState folds the run (up to --at) and prints it.
func replayState(run *replayRun, o *replayOpts, w *bufio.Writer) error {
	s, err := replay.Fold(run.src, run.id, o.at)
	if err != nil {
		return err
	}
	if !s.HistoryRowsExact() {
		n, err := replay.CountHistory(run.src, s.LastSeq())
		if err != nil {
			return err
		}
		s.SetHistoryRows(n)
	}
	if o.json {
		w.Write(append(replay.AppendStateJSON(nil, s), '\n'))
		return nil
	}
	replayStateText(w, s)
	return nil
}

func replayStateText(w *bufio.Writer, s *replay.State) {
	p := s.Proto()
	line := func(name, format string, args ...any) {
		fmt.Fprintf(w, "%-10s %s\n", name, fmt.Sprintf(format, args...))
	}
	line("run", "%s", p.RunId)
	st := replay.StatusName(p.Status)
	if e := p.Exit; e != nil {
		st += fmt.Sprintf(" (exit code %d", e.Code)
		if e.Message != "" {
			st += ", " + strconv.Quote(e.Message)
		}
		st += ")"
	}
	line("status", "%s", st)
	if in := p.Info; in != nil {
		for _, f := range []struct{ k, v string }{
			{"project", in.Project}, {"name", in.Name}, {"group", in.Group}, {"entity", in.Entity},
			{"job_type", in.JobType}, {"host", in.Host}, {"program", in.Program},
			{"args", strings.Join(in.Args, " ")}, {"tags", strings.Join(in.Tags, ",")},
			{"git", strings.TrimSpace(in.GitRemote + " " + in.GitCommit)}, {"notes", in.Notes},
		} {
			if f.v != "" {
				line(f.k, "%s", f.v)
			}
		}
	}
	if p.Records == 0 {
		line("records", "0")
		return
	}
	line("records", "%d, seq 1..%d", p.Records, p.LastSeq)
	line("time", "%s .. %s", replayTime(p.StartTimeUnixNano), replayTime(p.LastTimeUnixNano))
	var kinds []string
	for _, k := range replay.Kinds() {
		if n := s.Count(k); n > 0 {
			kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
		}
	}
	line("kinds", "%s", strings.Join(kinds, ", "))
	if p.LastStep >= 0 || p.HistoryRows > 0 {
		line("history", "%d rows, last step %d", p.HistoryRows, p.LastStep)
	} else {
		line("history", "none")
	}
	if n := s.Count(replay.KindOutput); n > 0 {
		line("output", "%d records, %d bytes", n, s.OutputBytes())
	}
	items := func(name string, items []*runlogv1.Item) {
		line(name, "%d keys", len(items))
		keys := make([]string, len(items))
		for i, it := range items {
			keys[i] = it.Key
		}
		width := 0
		for _, k := range keys {
			width = max(width, len(k))
		}
		width = min(width, 30)
		for _, it := range items {
			// Values in full, typed as in the JSON format.
			v := replay.AppendItem(nil, &runlogv1.Item{Value: it.Value})
			fmt.Fprintf(w, "  %-*s  %s\n", width, it.Key, replayValueText(v))
		}
	}
	items("config", p.Config)
	items("summary", p.Summary)
}

// replayValueText turns {"key":"",T:v} from AppendItem into "v (T)".
func replayValueText(item []byte) string {
	s := strings.TrimSuffix(strings.TrimPrefix(string(item), `{"key":"",`), "}")
	t, v, ok := strings.Cut(s, ":")
	if !ok {
		return "(no value)"
	}
	return fmt.Sprintf("%s (%s)", v, strings.Trim(t, `"`))
}

func replayTime(ns int64) string {
	return time.Unix(0, ns).UTC().Format(replay.TextTimeFormat)
}

// replayHistory writes the live history up to --at as CSV or JSON lines.
func replayHistory(run *replayRun, o *replayOpts, w *bufio.Writer) error {
	opts := replay.HistoryOptions{Keys: o.keys, To: o.at}
	if !o.json {
		return replay.WriteHistoryCSV(w, run.src, opts)
	}
	var buf []byte
	return replay.History(run.src, opts, func(r replay.Row) error {
		buf = append(buf[:0], `{"seq":`...)
		buf = strconv.AppendUint(buf, r.Seq, 10)
		buf = append(buf, `,"step":`...)
		buf = strconv.AppendInt(buf, r.Step, 10)
		buf = append(buf, `,"items":`...)
		buf = replay.AppendItems(buf, r.Items)
		buf = append(buf, "}\n"...)
		_, err := w.Write(buf)
		return err
	})
}

// replayVerify checks one run and prints each problem and a summary line.
func replayVerify(ctx context.Context, run *replayRun, o *replayOpts, w *bufio.Writer, stderr io.Writer) int {
	start := time.Now()
	res, err := replayVerifyLog(ctx, run, o)
	if err != nil {
		w.Flush()
		fmt.Fprintf(stderr, "runlog replay: verify %s: %v\n", run.id, err)
		return 1
	}
	for _, p := range res.GetProblems() {
		fmt.Fprintf(w, "%s\n", replayProblem(p))
	}
	fmt.Fprintf(w, "%s\n", replayVerifySummary(res, time.Since(start), run.svc != nil))
	if len(res.GetProblems()) > 0 {
		return 1
	}
	return 0
}

func replayVerifyLog(ctx context.Context, run *replayRun, o *replayOpts) (*runlogv1.VerifyResponse, error) {
	if run.local != nil {
		return replay.VerifyResponse(run.local, wal.VerifyOptions{TimeTolerance: o.tolerance})
	}
	return run.svc.c.Verify(ctx, &runlogv1.VerifyRequest{RunId: run.id})
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
	paths, err := filepath.Glob(filepath.Join(o.root, "runs", "*", "wal.bolt"))
	if err != nil {
		fmt.Fprintf(stderr, "runlog replay: %v\n", err)
		return 1
	}
	sort.Strings(paths)
	start := time.Now()
	var records uint64
	clean, damaged, unreadable := 0, 0, 0
	for _, path := range paths {
		id := filepath.Base(filepath.Dir(path))
		res, viaService, err := func() (*runlogv1.VerifyResponse, bool, error) {
			run, err := replayOpen(ctx, o.root, id, true)
			if err != nil {
				return nil, false, err
			}
			defer run.Close()
			res, err := replayVerifyLog(ctx, run, o)
			return res, run.svc != nil, err
		}()
		if err != nil {
			unreadable++
			fmt.Fprintf(w, "%s: cannot verify: %v\n", id, err)
			continue
		}
		records += res.GetRecords()
		for _, p := range res.GetProblems() {
			fmt.Fprintf(w, "%s: %s\n", id, replayProblem(p))
		}
		via := ""
		if viaService {
			via = " (through the service)"
		}
		if len(res.GetProblems()) == 0 {
			clean++
			fmt.Fprintf(w, "%s: clean, %d records%s\n", id, res.GetRecords(), via)
		} else {
			damaged++
			fmt.Fprintf(w, "%s: %d problems in %d records, first bad seq %d, last good seq %d%s\n",
				id, len(res.GetProblems()), res.GetRecords(), res.GetFirstBadSeq(), res.GetLastGoodSeq(), via)
		}
	}
	took := time.Since(start)
	fmt.Fprintf(w, "checked %d runs, %d records in %s (%s records/s): %d clean, %d with problems, %d unreadable\n",
		len(paths), records, replayDuration(took), replayRate(records, took), clean, damaged, unreadable)
	if damaged+unreadable > 0 {
		return 1
	}
	return 0
}

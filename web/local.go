package web

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/runlog/runlog/local"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/replay"
	"github.com/runlog/runlog/rollup"
	"github.com/runlog/runlog/root"
	"github.com/runlog/runlog/store"
	"github.com/runlog/runlog/wal"
	"github.com/runlog/runlog/wire"
)

// LocalOptions configure NewLocalSource. The zero value is a working
// default.
type LocalOptions struct {
	// MaxCacheBytes bounds the memory of what is kept per run between
	// requests (the folded state and the chart tiers); the runs used least
	// recently lose theirs first. Zero means 256 MiB.
	MaxCacheBytes int64
	// PollInterval is how often Wait looks at the file of a run that no
	// service holds (nothing writes it then but a service that picks it
	// up). Zero means 250ms.
	PollInterval time.Duration
}

// LocalSource serves the runs under a local root: each run read from its
// file, or through the root's service while the service holds the file.
// Nothing is written anywhere: the log is the truth, and what is derived
// from it lives in memory.
//
// Per run it keeps the state folded from the log, the digest of the records
// and, once a chart was asked for, the run's history tiers (rollup.Mem),
// each as of the run's last seq seen and extended from there by reading
// only the newer records. A run whose file did not change since (size and
// modification time, trusted once they are a second old) is answered
// without opening the file. The folded states and tiers are bounded by
// MaxCacheBytes, least recently used first.
//
// It is safe for concurrent use; requests for one run are serialised.
type LocalSource struct {
	dir  root.Dir
	opts LocalOptions

	// mu protects runs, lru and bytes. A run's own mutex is taken before
	// mu, never after; eviction only tries the others' (TryLock).
	mu    sync.Mutex
	runs  map[string]*localRun
	lru   *list.List // of *localRun holding a folded state; front: most recent
	bytes int64
}

var _ Source = (*LocalSource)(nil)

// NewLocalSource returns a Source over the runs of root d.
func NewLocalSource(d root.Dir, opts LocalOptions) *LocalSource {
	if opts.MaxCacheBytes <= 0 {
		opts.MaxCacheBytes = 256 << 20
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 250 * time.Millisecond
	}
	return &LocalSource{dir: d, opts: opts, runs: map[string]*localRun{}, lru: list.New()}
}

// fileSig is what a run's file looked like: a change to the log changes it.
type fileSig struct {
	size  int64
	mtime int64 // unix nanoseconds
}

// settleTime is how old a file's modification time must be for an
// unchanged one to prove that nothing was written since: a write in the
// same clock tick as the stat would keep it.
const settleTime = time.Second

// localRun is what LocalSource knows of one run.
type localRun struct {
	id string

	// mu serialises the reads of the run and protects the fields below.
	mu sync.Mutex
	// sig is the file as of seq; trusted only when sigOK.
	sig   fileSig
	sigOK bool
	seq   uint64
	// where is "file" or "service": how the run was last read.
	where     string
	finished  bool
	upstreams []Upstream

	// The folded part, dropped under memory pressure: the state, digest
	// and tiers as of seq (tiers as of memSeq).
	state  *replay.State
	digest *store.Digest
	sum    []byte             // digest.Sum() at seq
	pb     *runlogv1.RunState // state.Proto() at seq
	mem    *rollup.Mem        // live history rows up to memSeq
	memSeq uint64
	// damage is the error that ended the last fold early.
	damage error

	elem *list.Element // in LocalSource.lru while folded; under LocalSource.mu
	size int64         // bytes counted in LocalSource.bytes; under LocalSource.mu
}

// get returns the run's entry, creating it. It fails with ErrNotFound for
// an id that cannot name a run.
func (s *LocalSource) get(id string) (*localRun, error) {
	if err := root.CheckRunID(id); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.runs[id]
	if !ok {
		r = &localRun{id: id}
		s.runs[id] = r
	}
	return r, nil
}

func (s *LocalSource) stat(id string) (fileSig, error) {
	fi, err := os.Stat(s.dir.Log(id))
	if errors.Is(err, fs.ErrNotExist) {
		return fileSig{}, fmt.Errorf("run %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return fileSig{}, fmt.Errorf("run %s: %w", id, err)
	}
	return fileSig{size: fi.Size(), mtime: fi.ModTime().UnixNano()}, nil
}

// open opens the run: through the service first when it held the run at the
// last read and the run was not finished, from the file otherwise (and
// through the service when the file is held).
func (s *LocalSource) open(ctx context.Context, r *localRun) (*local.Run, error) {
	ref := local.RunRef(s.dir, r.id)
	if r.where == "service" && !r.finished {
		if rem, err := local.Dial(ctx, ref); err == nil {
			return &local.Run{Ref: ref, Remote: rem}, nil
		}
	}
	lr, err := local.Open(ctx, ref, local.Options{LockTimeout: 10 * time.Millisecond})
	if errors.Is(err, wal.ErrNotExist) {
		return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open run %s: %w", r.id, err)
	}
	return lr, nil
}

// syncLocked brings r up to date with its log: its last seq and where it is
// read from, and with fold set, its folded state; with tiers set too, a
// state folded from the start builds the chart tiers in the same read. It
// returns the run opened to do so, which the caller closes, or nil when the
// file did not change.
func (s *LocalSource) syncLocked(ctx context.Context, r *localRun, fold, tiers bool) (*local.Run, error) {
	sig, err := s.stat(r.id)
	if err != nil {
		return nil, err
	}
	if r.sigOK && sig == r.sig && (!fold || r.state != nil && r.state.LastSeq() >= r.seq) {
		return nil, nil
	}
	lr, err := s.open(ctx, r)
	if err != nil {
		return nil, err
	}
	last := uint64(0)
	if lr.File != nil {
		r.where = "file"
		last = lr.File.LastSeq()
		r.finished = lr.File.Finished()
		r.upstreams = fileUpstreams(lr.File)
	} else {
		r.where = "service"
		last = lr.Remote.LastSeq()
		r.finished = lr.Remote.Finished()
	}
	r.seq = last
	if fold {
		if r.state == nil {
			r.state, r.digest, r.mem, r.memSeq, r.damage = replay.NewState(r.id), store.NewDigest(), nil, 0, nil
			if tiers {
				r.mem = rollup.NewMem()
			}
		}
		if err := s.foldLocked(r, lr, last); err != nil {
			lr.Close()
			return nil, err
		}
	}
	// The stat before the read: a write after it changes the next one.
	r.sig, r.sigOK = sig, time.Since(time.Unix(0, sig.mtime)) > settleTime
	return lr, nil
}

// fileUpstreams reads each upstream's cursor and last sync error.
func fileUpstreams(l *wal.Log) []Upstream {
	cursors, err := l.Cursors()
	if err != nil {
		return []Upstream{{Error: fmt.Sprintf("read cursors: %v", err)}}
	}
	errs := l.SyncErrors(cursors)
	var out []Upstream
	for name, seq := range cursors {
		url, ok := strings.CutPrefix(name, wal.CursorUpstreamPrefix)
		if !ok {
			continue
		}
		out = append(out, Upstream{Name: url, Seq: seq, Error: errs[url]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// foldLocked extends r's folded state, digest and tiers with the records
// after the state's last seq up to seq to. A damaged record ends the fold
// where it is: the run is shown as far as it reads.
func (s *LocalSource) foldLocked(r *localRun, src replay.Source, to uint64) error {
	from := r.state.LastSeq() + 1
	if from > to {
		r.seq = r.state.LastSeq()
		return s.account(r)
	}
	err := src.Scan(from, func(seq uint64, data []byte) error {
		if seq > to {
			return errStop
		}
		ev, err := replay.DecodeEvent(data)
		if err != nil {
			return &wal.CorruptError{Seq: seq, Err: err}
		}
		r.state.ApplyEvent(&ev)
		r.digest.Add(data)
		if r.mem == nil {
			return nil
		}
		switch ev.Kind() {
		case replay.KindHistory:
			if err := addRow(r.mem, seq, ev.Time(), data); err != nil {
				return err
			}
			r.memSeq = seq
		case replay.KindRewind:
			// Rows before it may no longer be live: built again from the
			// log when next asked for.
			r.mem = nil
		default:
			r.memSeq = seq
		}
		return nil
	})
	var ce *wal.CorruptError
	switch {
	case errors.As(err, &ce):
		r.damage = err
	case err != nil && !errors.Is(err, errStop):
		return fmt.Errorf("read run %s: %w", r.id, err)
	}
	r.seq = r.state.LastSeq()
	r.pb, r.sum = nil, nil
	if r.mem != nil && r.memSeq < r.seq {
		r.memSeq = r.seq
	}
	return s.account(r)
}

// addRow folds the history record data into m.
func addRow(m *rollup.Mem, seq uint64, t int64, data []byte) error {
	return historyValues(seq, data, func(step int64, vals []rollup.Value) bool {
		m.Add(seq, t, step, vals)
		return true
	})
}

// historyValues calls fn with the step and the numeric values of the
// history record data: read with package wire when the row is laid out as
// encoders write it (no message per item), else decoded.
func historyValues(seq uint64, data []byte, fn func(step int64, vals []rollup.Value) bool) error {
	if step, vals, ok := fastValues(data); ok {
		if !fn(step, vals) {
			return errStop
		}
		return nil
	}
	return replay.History(oneRecord{seq, data}, replay.HistoryOptions{}, func(row replay.Row) error {
		if !fn(row.Step, numericItems(row.Items)) {
			return errStop
		}
		return nil
	})
}

// fastValues reads a history row's step and numeric values (numbers and
// booleans, finite ones) as numericItems does over the decoded row; ok is
// false for a layout wire's helpers do not vouch for.
func fastValues(data []byte) (step int64, vals []rollup.Value, ok bool) {
	h, err := wire.ParseHeader(data)
	if err != nil || h.Kind != wire.KindHistory || h.Payloads != 1 {
		return 0, nil, false
	}
	step, items, ok := wire.SplitRow(h.Payload)
	if !ok {
		return 0, nil, false
	}
	sc := wire.NewScanner(items)
	for sc.Next() {
		if !sc.Is(wire.HistoryItems, protowire.BytesType) {
			return 0, nil, false
		}
		key, val, ok := wire.SplitItem(sc.Bytes())
		if !ok {
			return 0, nil, false
		}
		v, ok := wire.ParseValue(val)
		if !ok {
			return 0, nil, false
		}
		var x float64
		switch v.Field {
		case wire.ValueDouble:
			x = math.Float64frombits(v.X)
		case wire.ValueInt:
			x = float64(int64(v.X))
		case wire.ValueBool:
			x = float64(v.X)
		default:
			continue
		}
		if rollup.Finite(x) {
			vals = append(vals, rollup.Value{Key: string(key), V: x})
		}
	}
	return step, vals, sc.Err() == nil
}

// oneRecord is a replay.Source of a single encoded record.
type oneRecord struct {
	seq  uint64
	data []byte
}

func (o oneRecord) Scan(from uint64, fn func(seq uint64, data []byte) error) error {
	if from > o.seq {
		return nil
	}
	return fn(o.seq, o.data)
}

// timed is a replay.Source that notes the time of the record it passes on,
// so that a reader of rows (which have no time) can stamp them.
type timed struct {
	src replay.Source
	t   int64
}

func (w *timed) Scan(from uint64, fn func(seq uint64, data []byte) error) error {
	return w.src.Scan(from, func(seq uint64, data []byte) error {
		if ev, err := replay.DecodeEvent(data); err == nil {
			w.t = ev.Time()
		}
		return fn(seq, data)
	})
}

// estimated sizes, for the cache's bound.
const (
	stateBytes   = 16 << 10
	blockBytes   = 160 // rollup.Block and its slice header
	keyStatBytes = 56  // rollup.KeyStat
)

// account updates r's share of the cache and evicts other runs' folded
// parts, least recently used first, until the cache fits.
func (s *LocalSource) account(r *localRun) error {
	size := int64(stateBytes)
	if r.pb != nil {
		size += int64(proto.Size(r.pb))
	}
	if r.mem != nil {
		rows := int64(r.mem.B.Rows())
		blocks := rows/32 + rows/1024 + rows/32768
		size += blocks * (blockBytes + keyStatBytes*int64(len(r.mem.B.Keys())))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bytes += size - r.size
	r.size = size
	if r.elem == nil {
		r.elem = s.lru.PushFront(r)
	} else {
		s.lru.MoveToFront(r.elem)
	}
	for e := s.lru.Back(); e != nil && s.bytes > s.opts.MaxCacheBytes; {
		o := e.Value.(*localRun)
		prev := e.Prev()
		if o != r && o.mu.TryLock() {
			o.state, o.digest, o.sum, o.pb, o.mem, o.memSeq, o.damage = nil, nil, nil, nil, nil, 0, nil
			s.lru.Remove(e)
			o.elem = nil
			s.bytes -= o.size
			o.size = 0
			o.mu.Unlock()
		}
		e = prev
	}
	return nil
}

// Cached returns how many runs have their folded part in memory and its
// estimated size.
func (s *LocalSource) Cached() (runs int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lru.Len(), s.bytes
}

// touch marks r as just used.
func (s *LocalSource) touch(r *localRun) {
	s.mu.Lock()
	if r.elem != nil {
		s.lru.MoveToFront(r.elem)
	}
	s.mu.Unlock()
}

// List implements Source: every run under the root with its last seq. A
// run that cannot be read (held by a process that is not the root's
// service) is left out.
func (s *LocalSource) List(ctx context.Context) ([]Brief, error) {
	ids, err := s.dir.RunIDs()
	if err != nil {
		return nil, err
	}
	out := make([]Brief, 0, len(ids))
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		seq, err := s.version(ctx, id)
		if err != nil {
			continue
		}
		out = append(out, Brief{ID: id, Version: seq})
	}
	return out, nil
}

// version returns the run's last seq.
func (s *LocalSource) version(ctx context.Context, id string) (uint64, error) {
	r, err := s.get(id)
	if err != nil {
		return 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	lr, err := s.syncLocked(ctx, r, false, false)
	if err != nil {
		return 0, err
	}
	if lr != nil {
		lr.Close()
	}
	return r.seq, nil
}

// Run implements Source.
func (s *LocalSource) Run(ctx context.Context, id string) (*Run, error) {
	r, err := s.get(id)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	lr, err := s.syncLocked(ctx, r, true, false)
	if err != nil {
		return nil, err
	}
	if lr != nil {
		lr.Close()
	}
	if r.pb == nil {
		r.pb = r.state.Proto()
		r.sum = r.digest.Sum()
		s.account(r)
	} else {
		s.touch(r)
	}
	// The state is shared between requests: readers do not change it.
	return &Run{State: r.pb, Seq: r.seq, Digest: r.sum, Upstreams: r.upstreams, Where: r.where}, nil
}

// Chart implements Source. The first chart of a run reads its history once
// into tiers in memory; later ones read only the records after the last
// seq seen, and a query costs what rollup.Run costs over tiers.
func (s *LocalSource) Chart(ctx context.Context, id string, q rollup.Query) (*rollup.Result, error) {
	r, err := s.get(id)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	lr, err := s.syncLocked(ctx, r, true, true)
	if err != nil {
		return nil, err
	}
	// Opened at most once per request, when something must be read.
	src := func() (*local.Run, error) {
		if lr == nil {
			lr, err = s.open(ctx, r)
		}
		return lr, err
	}
	defer func() {
		if lr != nil {
			lr.Close()
		}
	}()
	if r.mem == nil {
		rs, err := src()
		if err != nil {
			return nil, err
		}
		if err := s.buildTiersLocked(r, rs); err != nil {
			return nil, err
		}
	}
	rewound := r.state.Count(replay.KindRewind) > 0
	upTo := r.memSeq
	r.mem.RowsFunc = func(from, to uint64, fn func(uint64, int64, int64, []rollup.Value) bool) error {
		rs, err := src()
		if err != nil {
			return err
		}
		return liveRows(rs, rewound, from, min(to, upTo), fn)
	}
	defer func() { r.mem.RowsFunc = nil }()
	res, err := rollup.Run(r.mem.B, r.mem, q)
	if err != nil {
		return nil, fmt.Errorf("chart run %s: %w", id, err)
	}
	return res, nil
}

// buildTiersLocked reads the run's live history rows up to its folded seq
// into new tiers.
func (s *LocalSource) buildTiersLocked(r *localRun, src replay.Source) error {
	m := rollup.NewMem()
	to := r.state.LastSeq()
	if to > 0 {
		err := liveRows(src, r.state.Count(replay.KindRewind) > 0, 1, to, func(seq uint64, t, step int64, vals []rollup.Value) bool {
			m.Add(seq, t, step, vals)
			return true
		})
		if err != nil {
			return fmt.Errorf("chart run %s: %w", r.id, err)
		}
	}
	r.mem, r.memSeq = m, to
	return s.account(r)
}

// liveRows calls fn with the live history rows whose seq is in [from, to].
// Without a rewind every row is live and the records are read from seq
// from; with one, replay.History tells the live rows from the log.
func liveRows(src replay.Source, rewound bool, from, to uint64, fn func(seq uint64, t, step int64, vals []rollup.Value) bool) error {
	if !rewound {
		err := src.Scan(from, func(seq uint64, data []byte) error {
			if seq > to {
				return errStop
			}
			ev, err := replay.DecodeEvent(data)
			if err != nil {
				return fmt.Errorf("record %d: %w", seq, err)
			}
			if ev.Kind() != replay.KindHistory {
				return nil
			}
			return historyValues(seq, data, func(step int64, vals []rollup.Value) bool {
				return fn(seq, ev.Time(), step, vals)
			})
		})
		if errors.Is(err, errStop) {
			return nil
		}
		return err
	}
	tsrc := &timed{src: src}
	err := replay.History(tsrc, replay.HistoryOptions{To: to}, func(row replay.Row) error {
		if row.Seq < from {
			return nil
		}
		if !fn(row.Seq, tsrc.t, row.Step, numericItems(row.Items)) {
			return errStop
		}
		return nil
	})
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// Records implements Source.
func (s *LocalSource) Records(ctx context.Context, id string, from uint64, fn func(seq uint64, data []byte) error) error {
	r, err := s.get(id)
	if err != nil {
		return err
	}
	r.mu.Lock()
	lr, err := s.open(ctx, r)
	r.mu.Unlock()
	if err != nil {
		return err
	}
	defer lr.Close()
	return lr.Scan(from, fn)
}

// Verify implements Source: the file's checks (wal.Log.Verify), by the
// service when it holds the run. A local run keeps no digest to compare.
func (s *LocalSource) Verify(ctx context.Context, id string) (*Verification, error) {
	r, err := s.get(id)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	lr, err := s.open(ctx, r)
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	defer lr.Close()
	resp, err := lr.Verify(ctx, 0)
	if err != nil {
		return nil, fmt.Errorf("verify run %s: %w", id, err)
	}
	v := &Verification{Records: resp.GetRecords(), LastGoodSeq: resp.GetLastGoodSeq(), FirstBadSeq: resp.GetFirstBadSeq(), Problems: []Problem{}}
	for _, p := range resp.GetProblems() {
		v.Problems = append(v.Problems, Problem{Seq: p.GetSeq(), Kind: p.GetKind(), Message: p.GetMessage()})
	}
	return v, nil
}

// Wait implements Source. A run the service holds is followed through the
// service's Read; a run in a file is looked at every PollInterval (only a
// service writes a run, and it takes the file first).
func (s *LocalSource) Wait(ctx context.Context, id string, after uint64) error {
	r, err := s.get(id)
	if err != nil {
		return err
	}
	var tick *time.Ticker
	defer func() {
		if tick != nil {
			tick.Stop()
		}
	}()
	for {
		r.mu.Lock()
		lr, err := s.syncLocked(ctx, r, false, false)
		seq, where := r.seq, r.where
		r.mu.Unlock()
		if lr != nil {
			lr.Close()
		}
		if err != nil {
			return err
		}
		if seq > after {
			return nil
		}
		if where == "service" {
			switch err := s.follow(ctx, id, after); {
			case err == nil:
				return nil
			case ctx.Err() != nil:
				return ctx.Err()
			case !errors.Is(err, errNotFollowed):
				return err
			}
			r.mu.Lock()
			r.sigOK = false
			r.mu.Unlock()
			// The service is not writing the run (any more): read it
			// again, from the file if it was released.
		}
		if tick == nil {
			tick = time.NewTicker(s.opts.PollInterval)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// errNotFollowed says that a follow through the service ended without a
// record: the service is not writing the run.
var errNotFollowed = errors.New("web: the service is not writing the run")

// follow returns once the service that holds run id sends a record after
// seq after.
func (s *LocalSource) follow(ctx context.Context, id string, after uint64) error {
	ref := local.RunRef(s.dir, id)
	rem, err := local.Dial(ctx, ref)
	if err != nil {
		return errNotFollowed
	}
	lr := &local.Run{Ref: ref, Remote: rem}
	defer lr.Close()
	t, _ := lr.Follow(ctx, 0, nil)
	err = t.Scan(after+1, func(uint64, []byte) error { return errStop })
	switch {
	case errors.Is(err, errStop):
		return nil
	case err == nil:
		return errNotFollowed
	}
	return err
}

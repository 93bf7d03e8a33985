package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"google.golang.org/protobuf/proto"

	"github.com/runlog/runlog/internal/dirsync"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/replay"
	"github.com/runlog/runlog/rollup"
	"github.com/runlog/runlog/wire"
)

var (
	bucketMeta  = []byte("meta")
	bucketIndex = []byte("index")
	bucketRuns  = []byte("runs")

	bucketRecords = []byte("records")
	keyState      = []byte("state")
	keyDigest     = []byte("digest")
	keyFormat     = []byte("format")
)

const formatVersion = "1"

// FileName is the name of the store's file inside its directory.
const FileName = "hub.bolt"

// Options configure Open. The zero value is a working default.
type Options struct {
	// Logger receives the store's own messages. Nil discards them.
	Logger *slog.Logger
	// LockTimeout is how long Open waits for another process to release the
	// file before it fails with ErrLocked. Zero means one second.
	LockTimeout time.Duration
	// InitialMmapSize reserves address space up front so that readers do not
	// stall the writer while bbolt grows its map. Zero means 1 GiB; it is
	// virtual memory, not resident memory.
	InitialMmapSize int
	// MaxCommitBytes bounds the record bytes one group commit takes from the
	// queue (a single larger append still goes through). Zero means 32 MiB.
	MaxCommitBytes int
	// CachedRuns is how many runs' folded state the writer keeps in memory
	// between commits; others are read back from their snapshot. Zero means
	// 256.
	CachedRuns int
	// Now returns the time stored as a run's last update. Nil means time.Now.
	Now func() time.Time
}

// Bolt is a Store on one bbolt file. It is safe for concurrent use.
type Bolt struct {
	path      string
	db        *bolt.DB
	log       *slog.Logger
	now       func() time.Time
	maxCommit int
	maxCached int

	queue chan *appendReq
	quit  chan struct{}
	done  chan struct{}

	// mu protects closed, marks and changes.
	mu     sync.Mutex
	closed bool
	// marks holds the committed high-water mark of runs appended since Open,
	// so that Append can skip decoding duplicates before it queues them. It
	// only ever lags the truth, which the writer checks.
	marks map[string]uint64
	// changes is closed and renewed by each commit (notify.go).
	changes changes
	// active counts calls in progress; Close waits for them.
	active sync.WaitGroup

	// cache is owned by the writer goroutine.
	cache map[string]*runCache
	// blockBuf holds the tier blocks of the transaction in progress; the
	// writer owns it and empties it between transactions.
	blockBuf []byte

	stats struct{ commits, appends, records atomic.Uint64 }
}

// Stats counts the work of a store's writer since Open. Group commit shows
// as more appends per commit than one: several Append calls, of one run or
// of many, written in one transaction.
type Stats struct {
	Commits uint64 // transactions committed
	Appends uint64 // Append calls they carried
	Records uint64 // records in those calls, resends included
}

// Stats returns the writer's counters; a nil store has none.
func (b *Bolt) Stats() Stats {
	if b == nil {
		return Stats{}
	}
	return Stats{Commits: b.stats.commits.Load(), Appends: b.stats.appends.Load(), Records: b.stats.records.Load()}
}

var _ Store = (*Bolt)(nil)

// Open opens the store in dir, creating the directory and the file if needed.
func Open(dir string, opts Options) (*Bolt, error) {
	if _, err := dirsync.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	_, statErr := os.Lstat(path)
	created := errors.Is(statErr, os.ErrNotExist)
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = time.Second
	}
	mmap := opts.InitialMmapSize
	if mmap <= 0 {
		mmap = 1 << 30
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:         timeout,
		InitialMmapSize: mmap,
		FreelistType:    bolt.FreelistMapType,
	})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("open store %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketMeta, bucketIndex, bucketRuns} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keyFormat); v == nil {
			return meta.Put(keyFormat, []byte(formatVersion))
		} else if string(v) != formatVersion {
			return fmt.Errorf("unknown store format %q (this build reads %q)", v, formatVersion)
		}
		return nil
	})
	if err == nil && created {
		// The store's first commit is fsynced, its directory entry only
		// once the directory is.
		err = dirsync.Sync(dir)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	b := &Bolt{
		path:      path,
		db:        db,
		log:       opts.Logger,
		now:       opts.Now,
		maxCommit: opts.MaxCommitBytes,
		maxCached: opts.CachedRuns,
		queue:     make(chan *appendReq, 256),
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
		marks:     make(map[string]uint64),
		cache:     make(map[string]*runCache),
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.maxCommit <= 0 {
		b.maxCommit = 32 << 20
	}
	if b.maxCached <= 0 {
		b.maxCached = 256
	}
	go b.run()
	return b, nil
}

// Path returns the store's file.
func (b *Bolt) Path() string { return b.path }

// enter registers a call in progress; it fails once Close has begun.
func (b *Bolt) enter() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	b.active.Add(1)
	return nil
}

func (b *Bolt) leave() { b.active.Done() }

// Close waits for the calls in progress, stops the writer and closes the
// file. Calling Close twice is harmless.
func (b *Bolt) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.active.Wait()
	close(b.quit)
	<-b.done
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", b.path, err)
	}
	return nil
}

// pending is one record of an append, prepared outside the writer.
type pending struct {
	seq     uint64
	val     []byte       // CRC-32C + record bytes, the stored value (also for a duplicate)
	ev      replay.Event // decoded for the fold
	decoded bool         // false for a known duplicate
	chart   *chartRow    // a history row's numeric values
	err     error        // why the record cannot be stored
}

// appendReq is one Append waiting for the writer.
type appendReq struct {
	runID string
	recs  []pending
	bytes int
	done  chan appendResult // buffered: the writer never blocks on it
}

type appendResult struct {
	hw  uint64
	err error
}

// Append implements Store.
func (b *Bolt) Append(ctx context.Context, runID string, records [][]byte) (uint64, error) {
	if !ValidRunID(runID) {
		return 0, fmt.Errorf("append run %q: %w", runID, ErrBadRunID)
	}
	if err := b.enter(); err != nil {
		return 0, err
	}
	defer b.leave()

	b.mu.Lock()
	known := b.marks[runID]
	b.mu.Unlock()

	// Checksum and decode here, in the caller's goroutine, so that callers
	// prepare their batches in parallel while the writer commits.
	req := &appendReq{runID: runID, recs: make([]pending, len(records)), done: make(chan appendResult, 1)}
	size := 0
	for _, data := range records {
		size += wire.FrameOverhead + len(data)
	}
	buf := make([]byte, 0, size)
	var charts chartReader
	for i, data := range records {
		p := &req.recs[i]
		seq, err := seqOf(data)
		if err != nil {
			p.err = fmt.Errorf("does not decode: %w", err)
			continue
		}
		p.seq = seq
		if seq > known {
			ev, err := replay.DecodeEvent(data)
			if err != nil {
				p.err = fmt.Errorf("does not decode: %w", err)
				continue
			}
			p.ev, p.decoded = ev, true
			if ev.Kind() == replay.KindHistory {
				if p.chart, err = charts.read(data, &ev); err != nil {
					p.err = fmt.Errorf("does not decode: %w", err)
					continue
				}
			}
		}
		// A duplicate is kept undecoded: the writer compares its bytes
		// with the stored record's.
		off := len(buf)
		buf = wire.AppendFrame(buf, data)
		p.val = buf[off:len(buf):len(buf)]
	}
	req.bytes = len(buf)

	select {
	case b.queue <- req:
	case <-ctx.Done():
		return 0, fmt.Errorf("append run %s: %w", runID, ctx.Err())
	}
	// Once queued the append happens whether or not the caller still waits.
	select {
	case res := <-req.done:
		return res.hw, res.err
	case <-ctx.Done():
		return 0, fmt.Errorf("append run %s: %w", runID, ctx.Err())
	}
}

// seqOf reads the seq of an encoded Record without decoding the rest.
func seqOf(b []byte) (uint64, error) {
	h, err := wire.ParseHeader(b)
	if err != nil {
		return 0, err
	}
	if h.Seq == 0 {
		return 0, errors.New("record has no seq")
	}
	return h.Seq, nil
}

// runCache is a run's end as the writer knows it.
type runCache struct {
	hw     uint64
	state  *replay.State
	digest *Digest
	// roll is the run's history tiers (see chart.go), tiers writes their
	// blocks.
	roll  *rollup.Builder
	tiers *tierWriter
	// dirty is set when the current transaction stored records of the run.
	dirty bool
}

// run is the writer: it takes everything queued, commits it in one
// transaction and answers each append.
func (b *Bolt) run() {
	defer close(b.done)
	var batch []*appendReq
	for {
		batch = batch[:0]
		select {
		case r := <-b.queue:
			batch = append(batch, r)
		case <-b.quit:
			// Close waited for every caller, so what is queued now is all
			// there will be; commit it for callers that stopped waiting.
			for {
				select {
				case r := <-b.queue:
					b.commit([]*appendReq{r})
				default:
					return
				}
			}
		}
		n := batch[0].bytes
	more:
		for n < b.maxCommit {
			select {
			case r := <-b.queue:
				batch = append(batch, r)
				n += r.bytes
			default:
				break more
			}
		}
		b.commit(batch)
		clear(batch)
	}
}

// commit applies a group of appends in one transaction.
func (b *Bolt) commit(batch []*appendReq) {
	results := make([]appendResult, len(batch))
	before := make(map[string]uint64, len(batch))
	touched := make(map[string]*runCache, len(batch))
	now := b.now().UnixNano()
	b.blockBuf = b.blockBuf[:0]
	defer func() {
		for _, rc := range touched {
			rc.tiers.end()
		}
	}()
	err := b.db.Update(func(tx *bolt.Tx) error {
		for i, req := range batch {
			rc, err := b.load(tx, req.runID)
			if err != nil {
				results[i] = appendResult{err: err}
				continue
			}
			if _, ok := touched[req.runID]; !ok {
				before[req.runID] = rc.hw
				touched[req.runID] = rc
			}
			hw, err := b.apply(tx, rc, req)
			if err != nil && !isRequestError(err) {
				return err
			}
			results[i] = appendResult{hw: hw, err: err}
		}
		for id, rc := range touched {
			if !rc.dirty {
				continue
			}
			if err := b.saveRun(tx, id, rc, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// Nothing of the transaction is on disk: forget what the writer
		// folded in memory and report the failure to every append.
		for id := range touched {
			delete(b.cache, id)
		}
		for i, req := range batch {
			results[i] = appendResult{hw: before[req.runID], err: fmt.Errorf("append run %s: %w", req.runID, err)}
		}
	} else {
		b.mu.Lock()
		stored := false
		for id, rc := range touched {
			stored = stored || rc.dirty
			rc.dirty = false
			b.marks[id] = rc.hw
		}
		if stored {
			b.notifyLocked()
		}
		b.mu.Unlock()
		records := 0
		for _, req := range batch {
			records += len(req.recs)
		}
		b.stats.commits.Add(1)
		b.stats.appends.Add(uint64(len(batch)))
		b.stats.records.Add(uint64(records))
	}
	for i, req := range batch {
		req.done <- results[i]
	}
	b.evict(touched)
}

func isRequestError(err error) bool {
	return errors.Is(err, ErrGap) || errors.Is(err, ErrBadRecord) || errors.Is(err, ErrMismatch)
}

// evict keeps the writer's cache bounded, sparing the runs just written.
func (b *Bolt) evict(keep map[string]*runCache) {
	for id := range b.cache {
		if len(b.cache) <= b.maxCached {
			return
		}
		if _, ok := keep[id]; !ok {
			delete(b.cache, id)
		}
	}
}

// load returns the writer's view of a run, reading it from tx on a miss. A
// run the store has never seen starts empty; its buckets are created with
// its first record.
func (b *Bolt) load(tx *bolt.Tx, runID string) (*runCache, error) {
	if rc, ok := b.cache[runID]; ok {
		return rc, nil
	}
	rc := &runCache{state: replay.NewState(runID), digest: NewDigest(), roll: rollup.NewBuilder(), tiers: newTierWriter(runID)}
	if rb := tx.Bucket(bucketRuns).Bucket([]byte(runID)); rb != nil {
		if v := rb.Get(keyState); v != nil {
			if err := rc.state.UnmarshalBinary(v); err != nil {
				return nil, fmt.Errorf("load run %s: %w", runID, err)
			}
		}
		if v := rb.Get(keyDigest); v != nil {
			d, err := unmarshalDigest(v)
			if err != nil {
				return nil, fmt.Errorf("load run %s: digest: %w", runID, err)
			}
			rc.digest = d
		}
		rc.hw = rc.state.LastSeq()
		var last uint64
		if k, _ := rb.Bucket(bucketRecords).Cursor().Last(); k != nil {
			last = binary.BigEndian.Uint64(k)
		}
		if last != rc.hw {
			return nil, fmt.Errorf("load run %s: state covers seq %d but the last record is %d", runID, rc.hw, last)
		}
		roll, err := loadRollup(rb, rc.hw)
		if err != nil {
			return nil, fmt.Errorf("load run %s: %w", runID, err)
		}
		rc.roll = roll
	}
	b.cache[runID] = rc
	return rc, nil
}

// apply stores the records of req that extend the run, stopping at the first
// one it cannot store. It returns the run's mark after them and, for a
// refused record, a *GapError, *RecordError or *MismatchError; any other
// error fails the transaction.
func (b *Bolt) apply(tx *bolt.Tx, rc *runCache, req *appendReq) (uint64, error) {
	if err := b.checkDuplicates(tx, rc, req); err != nil {
		return rc.hw, err
	}
	var recs *bolt.Bucket
	for i := range req.recs {
		p := &req.recs[i]
		if p.err != nil {
			return rc.hw, &RecordError{RunID: req.runID, Seq: p.seq, Index: i, Err: p.err}
		}
		if p.seq <= rc.hw {
			continue
		}
		if p.seq > rc.hw+1 {
			return rc.hw, &GapError{RunID: req.runID, HighWater: rc.hw, Seq: p.seq}
		}
		if rc.state.Finished() {
			return rc.hw, &RecordError{RunID: req.runID, Seq: p.seq, Index: i,
				Err: fmt.Errorf("follows the run's exit record at seq %d", rc.hw)}
		}
		if !p.decoded {
			// Append thought it a duplicate from a mark that a failed
			// commit has since taken back; it cannot be stored unseen.
			return rc.hw, &RecordError{RunID: req.runID, Seq: p.seq, Index: i,
				Err: errors.New("was skipped as a duplicate; send it again")}
		}
		if recs == nil {
			var err error
			if recs, err = runRecords(tx, req.runID); err != nil {
				return rc.hw, err
			}
		}
		var key [8]byte
		binary.BigEndian.PutUint64(key[:], p.seq)
		if err := recs.Put(key[:], p.val); err != nil {
			return rc.hw, fmt.Errorf("put run %s seq %d: %w", req.runID, p.seq, err)
		}
		rc.digest.Add(p.val[wire.FrameOverhead:])
		rc.state.ApplyEvent(&p.ev)
		switch {
		case p.chart != nil:
			if err := b.addChartRow(tx, rc, p.seq, p.chart); err != nil {
				return rc.hw, err
			}
		case p.ev.Kind() == replay.KindRewind:
			rc.roll.MarkStale()
		}
		rc.hw = p.seq
		rc.dirty = true
	}
	return rc.hw, nil
}

// checkDuplicates compares each record of req at or below the run's mark
// with the stored one, before apply stores anything, and returns a
// *MismatchError for the first that differs. A duplicate arrives only with a
// resend or a sender's first batch, so this reads little.
func (b *Bolt) checkDuplicates(tx *bolt.Tx, rc *runCache, req *appendReq) error {
	var recs *bolt.Bucket
	for i := range req.recs {
		p := &req.recs[i]
		if p.err != nil || p.seq > rc.hw {
			continue
		}
		if recs == nil {
			if rb := tx.Bucket(bucketRuns).Bucket([]byte(req.runID)); rb != nil {
				recs = rb.Bucket(bucketRecords)
			}
			if recs == nil {
				return fmt.Errorf("run %s: mark %d but no records bucket", req.runID, rc.hw)
			}
		}
		var key [8]byte
		binary.BigEndian.PutUint64(key[:], p.seq)
		stored := recs.Get(key[:])
		if stored == nil {
			return fmt.Errorf("run %s: record seq %d below the mark %d is missing", req.runID, p.seq, rc.hw)
		}
		if !bytes.Equal(stored, p.val) {
			return &MismatchError{RunID: req.runID, Seq: p.seq}
		}
	}
	return nil
}

// runRecords returns the run's records bucket, creating the run's buckets.
func runRecords(tx *bolt.Tx, runID string) (*bolt.Bucket, error) {
	rb, err := tx.Bucket(bucketRuns).CreateBucketIfNotExists([]byte(runID))
	if err != nil {
		return nil, fmt.Errorf("create run %s: %w", runID, err)
	}
	recs, err := rb.CreateBucketIfNotExists(bucketRecords)
	if err != nil {
		return nil, fmt.Errorf("create run %s: %w", runID, err)
	}
	recs.FillPercent = 1.0
	return recs, nil
}

// saveRun writes a run's state snapshot, digest and index entry.
func (b *Bolt) saveRun(tx *bolt.Tx, runID string, rc *runCache, now int64) error {
	rb := tx.Bucket(bucketRuns).Bucket([]byte(runID))
	snap, err := rc.state.MarshalBinary()
	if err != nil {
		return err
	}
	if err := rb.Put(keyState, snap); err != nil {
		return fmt.Errorf("put run %s state: %w", runID, err)
	}
	dg, err := rc.digest.marshal()
	if err != nil {
		return fmt.Errorf("run %s digest: %w", runID, err)
	}
	if err := rb.Put(keyDigest, dg); err != nil {
		return fmt.Errorf("put run %s digest: %w", runID, err)
	}
	if err := saveRollup(rb, runID, rc); err != nil {
		return err
	}
	entry, err := proto.Marshal(indexEntry(rc, now))
	if err != nil {
		return fmt.Errorf("encode run %s index entry: %w", runID, err)
	}
	if err := tx.Bucket(bucketIndex).Put([]byte(runID), entry); err != nil {
		return fmt.Errorf("put run %s index entry: %w", runID, err)
	}
	return nil
}

func indexEntry(rc *runCache, now int64) *runlogv1.HubRun {
	s := rc.state
	e := &runlogv1.HubRun{
		RunId:           s.RunID(),
		Status:          s.Status(),
		HighWater:       rc.hw,
		LastStep:        s.LastStep(),
		HistoryRows:     s.HistoryRows(),
		UpdatedUnixNano: now,
		Digest:          rc.digest.Sum(),
	}
	// Proto copies config and summary; the index needs only a few fields.
	rs := s.Proto()
	e.Project = rs.GetInfo().GetProject()
	e.Name = rs.GetInfo().GetName()
	e.StartTimeUnixNano = rs.GetInfo().GetStartTimeUnixNano()
	if e.StartTimeUnixNano == 0 {
		e.StartTimeUnixNano = rs.GetStartTimeUnixNano()
	}
	e.LastTimeUnixNano = rs.GetLastTimeUnixNano()
	return e
}

// HighWater implements Store.
func (b *Bolt) HighWater(ctx context.Context, runID string) (uint64, error) {
	e, err := b.entry(runID)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return e.GetHighWater(), nil
}

// entry reads a run's index entry.
func (b *Bolt) entry(runID string) (*runlogv1.HubRun, error) {
	if err := b.enter(); err != nil {
		return nil, err
	}
	defer b.leave()
	e, err := b.entryLocked(runID)
	if err != nil {
		return nil, err
	}
	return e, nil
}

// ListRuns implements Store.
func (b *Bolt) ListRuns(ctx context.Context, opts ListOptions) ([]*runlogv1.HubRun, error) {
	if err := b.enter(); err != nil {
		return nil, err
	}
	defer b.leave()
	var out []*runlogv1.HubRun
	err := b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketIndex).ForEach(func(k, v []byte) error {
			e := new(runlogv1.HubRun)
			if err := proto.Unmarshal(v, e); err != nil {
				return fmt.Errorf("run %s: index entry: %w", k, err)
			}
			if opts.Project == "" || e.GetProject() == opts.Project {
				out = append(out, e)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return out, nil
}

// Run implements Store.
func (b *Bolt) Run(ctx context.Context, runID string) (*runlogv1.HubRun, *runlogv1.RunState, error) {
	if err := b.enter(); err != nil {
		return nil, nil, err
	}
	defer b.leave()
	e := new(runlogv1.HubRun)
	st := replay.NewState(runID)
	err := b.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketIndex).Get([]byte(runID))
		if v == nil {
			return fmt.Errorf("run %s: %w", runID, ErrNotFound)
		}
		if err := proto.Unmarshal(v, e); err != nil {
			return fmt.Errorf("run %s: index entry: %w", runID, err)
		}
		rb := tx.Bucket(bucketRuns).Bucket([]byte(runID))
		if rb == nil {
			return fmt.Errorf("run %s: indexed but has no records", runID)
		}
		if err := st.UnmarshalBinary(rb.Get(keyState)); err != nil {
			return fmt.Errorf("run %s: %w", runID, err)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return e, st.Proto(), nil
}

// Records implements Store.
func (b *Bolt) Records(ctx context.Context, runID string, from uint64, fn func(seq uint64, data []byte) error) error {
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	if _, err := b.entryLocked(runID); err != nil {
		return err
	}
	return (&source{b: b, ctx: ctx, runID: runID}).Scan(from, fn)
}

// entryLocked is entry for a caller that already entered.
func (b *Bolt) entryLocked(runID string) (*runlogv1.HubRun, error) {
	e := new(runlogv1.HubRun)
	err := b.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketIndex).Get([]byte(runID))
		if v == nil {
			return fmt.Errorf("run %s: %w", runID, ErrNotFound)
		}
		return proto.Unmarshal(v, e)
	})
	return e, err
}

// History implements Store.
func (b *Bolt) History(ctx context.Context, runID string, q HistoryQuery, fn func(*runlogv1.HistorySample) error) error {
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	e, err := b.entryLocked(runID)
	if err != nil {
		return err
	}
	src := &source{b: b, ctx: ctx, runID: runID}
	return history(src, e.GetHighWater(), q, fn)
}

// scanChunk bounds how many records one read transaction visits.
const scanChunk = 4096

// source reads one run's records in short read transactions; it is the
// replay.Source the history readers fold from.
type source struct {
	b     *Bolt
	ctx   context.Context
	runID string
}

var _ replay.Source = (*source)(nil)

// Scan implements replay.Source, verifying each record's checksum.
func (s *source) Scan(from uint64, fn func(seq uint64, data []byte) error) error {
	if from == 0 {
		from = 1
	}
	for {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		n := 0
		next := from
		err := s.b.db.View(func(tx *bolt.Tx) error {
			rb := tx.Bucket(bucketRuns).Bucket([]byte(s.runID))
			if rb == nil {
				return nil
			}
			c := rb.Bucket(bucketRecords).Cursor()
			var key [8]byte
			binary.BigEndian.PutUint64(key[:], from)
			for k, v := c.Seek(key[:]); k != nil && n < scanChunk; k, v = c.Next() {
				seq := binary.BigEndian.Uint64(k)
				data, err := wire.Unframe(v)
				if err != nil {
					return &CorruptError{RunID: s.runID, Seq: seq, Err: err}
				}
				if err := fn(seq, data); err != nil {
					return err
				}
				n++
				next = seq + 1
			}
			return nil
		})
		if err != nil {
			return err
		}
		if n < scanChunk {
			return nil
		}
		from = next
	}
}

// history streams the live rows of src up to seq to that match q.
func history(src replay.Source, to uint64, q HistoryQuery, fn func(*runlogv1.HistorySample) error) error {
	opts := replay.HistoryOptions{Keys: q.Keys, To: to, FromStep: q.MinStep, ToStep: q.MaxStep, HasToStep: q.HasMaxStep}
	if q.MaxSamples <= 0 {
		return replay.History(src, opts, func(r replay.Row) error {
			return fn(&runlogv1.HistorySample{Step: r.Step, Items: r.Items})
		})
	}
	samples, err := replay.SampleHistory(src, opts, q.MaxSamples)
	if err != nil {
		return err
	}
	for _, s := range samples {
		if err := fn(s); err != nil {
			return err
		}
	}
	return nil
}

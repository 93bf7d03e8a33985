package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/replay"
	"github.com/runlog/runlog/rollup"
)

// PostgresOptions configure OpenPostgres. The zero value is a working
// default.
type PostgresOptions struct {
	// Logger receives the store's own messages. Nil discards them.
	Logger *slog.Logger
	// MaxConns bounds the connections the store opens to the database,
	// whatever the number of runs and streams. Zero means 8.
	MaxConns int32
	// CachedRuns is how many runs' folded state the store keeps in memory
	// between appends; others are read back from the database. Zero means
	// 256.
	CachedRuns int
	// Now returns the time stored as a run's last update. Nil means time.Now.
	Now func() time.Time
}

// Postgres is a Store on a PostgreSQL database. Any number of hub processes
// may share one database: ingest of a run is serialised by its row's lock,
// not by a process's memory. It is safe for concurrent use.
type Postgres struct {
	pool      *pgxpool.Pool
	log       *slog.Logger
	now       func() time.Time
	maxCached int
	desc      string

	quit chan struct{}
	done chan struct{}

	// mu protects closed and changes.
	mu      sync.Mutex
	closed  bool
	changes changes
	// active counts calls in progress; Close waits for them.
	active sync.WaitGroup

	// cacheMu protects cache.
	cacheMu sync.Mutex
	// cache holds runs' state after an append, keyed by run id. An entry is
	// taken out while an append uses it and put back after its commit, and
	// is trusted only when its mark equals the database's: records are
	// never rewritten, so the same mark means the same records.
	cache map[string]*runCache
}

var _ Store = (*Postgres)(nil)

// notifyChannel is the LISTEN/NOTIFY channel of committed appends: hubs
// sharing a database wake their live readers on each other's commits.
const notifyChannel = "runlog_records"

// OpenPostgres connects to the database at url (postgres://...), applies
// the schema's migrations under an advisory lock and returns the store.
func OpenPostgres(ctx context.Context, url string, opts PostgresOptions) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open store: connection string: %w", err)
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 8
	}
	cfg.MaxConns = opts.MaxConns
	cfg.MinConns = 0
	// A connection broken by a database restart is found out on its next
	// use; check one that sat idle before handing it out.
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	p := &Postgres{
		pool:      pool,
		log:       opts.Logger,
		now:       opts.Now,
		maxCached: opts.CachedRuns,
		desc:      fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database),
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
		cache:     make(map[string]*runCache),
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.maxCached <= 0 {
		p.maxCached = 256
	}
	if _, err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open store %s: %w", p.desc, err)
	}
	go p.listen(cfg.ConnConfig.Copy())
	return p, nil
}

// MigratePostgres applies the schema's migrations to the database at url
// and returns the version it found before them.
func MigratePostgres(ctx context.Context, url string) (int, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	defer pool.Close()
	return migrate(ctx, pool)
}

// Path describes the database (without its password).
func (p *Postgres) Path() string { return p.desc }

func (p *Postgres) enter() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	p.active.Add(1)
	return nil
}

func (p *Postgres) leave() { p.active.Done() }

// Close waits for the calls in progress, stops the listener and closes the
// pool. Calling Close twice is harmless.
func (p *Postgres) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.active.Wait()
	close(p.quit)
	<-p.done
	p.pool.Close()
	return nil
}

// Changed returns a channel that is closed once an append stores records,
// in this process or, through LISTEN/NOTIFY, in another hub on the same
// database.
func (p *Postgres) Changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.changes.ch == nil {
		p.changes.ch = make(chan struct{})
	}
	return p.changes.ch
}

func (p *Postgres) notify() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.changes.ch != nil {
		close(p.changes.ch)
		p.changes.ch = nil
	}
}

// listen wakes Changed's waiters on every commit announced on the database,
// reconnecting after a failure. It ends when Close closes quit.
func (p *Postgres) listen(cfg *pgx.ConnConfig) {
	defer close(p.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-p.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	wait := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := p.listenOnce(ctx, cfg)
		if ctx.Err() != nil {
			return
		}
		p.log.Warn("store: listening for other hubs' commits failed; retrying", "err", err, "wait", wait)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		wait = min(2*wait, 5*time.Second)
	}
}

func (p *Postgres) listenOnce(ctx context.Context, cfg *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	// Commits may have happened while nobody listened.
	p.notify()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		p.notify()
	}
}

// classify marks the errors that mean the database cannot be reached or
// is restarting with ErrUnavailable: the sender retries those with backoff.
func classify(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code[:2] {
		case "08", "57", "53", "40":
			// connection exception, operator intervention (shutdown),
			// insufficient resources, transaction rollback
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return err
	}
	var ne net.Error
	var ce *pgconn.ConnectError
	if errors.As(err, &ne) || errors.As(err, &ce) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) ||
		errors.Is(err, pgx.ErrTxClosed) || isConnClosed(err) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

func isConnClosed(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return false
	}
	// A connection that died mid-statement reports an unexpected EOF or a
	// closed connection without a database error.
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	return strings.Contains(err.Error(), "conn closed")
}

// takeCache removes and returns the cached state of a run, nil on a miss.
func (p *Postgres) takeCache(runID string) *runCache {
	p.cacheMu.Lock()
	defer p.cacheMu.Unlock()
	rc := p.cache[runID]
	delete(p.cache, runID)
	return rc
}

// putCache keeps a run's state after a commit, evicting others beyond the
// bound.
func (p *Postgres) putCache(runID string, rc *runCache) {
	p.cacheMu.Lock()
	defer p.cacheMu.Unlock()
	for id := range p.cache {
		if len(p.cache) < p.maxCached {
			break
		}
		delete(p.cache, id)
	}
	p.cache[runID] = rc
}

// pgBatch is what one append writes besides the run's row.
type pgBatch struct {
	seqs    []int64
	data    [][]byte
	steps   []*int64 // a live history row's step, nil for other records
	oseqs   []int64  // output records
	rewind  bool     // a rewind dropped stored rows at or after rewindStep
	rewStep int64
	blocks  []*rollupBlock
}

type rollupBlock struct {
	level int16
	idx   int64
	data  []byte
}

// Append implements Store. One transaction per call: it locks the run's
// row, so that appends of one run from any number of hubs take turns, and
// returns only after the commit.
func (p *Postgres) Append(ctx context.Context, runID string, records [][]byte) (uint64, error) {
	if !ValidRunID(runID) {
		return 0, fmt.Errorf("append run %q: %w", runID, ErrBadRunID)
	}
	if err := p.enter(); err != nil {
		return 0, err
	}
	defer p.leave()
	seqs := make([]uint64, len(records))
	serr := make([]error, len(records))
	for i, data := range records {
		seqs[i], serr[i] = seqOf(data)
	}
	rc := p.takeCache(runID)
	var (
		hw     uint64
		reqErr error
		stored bool
	)
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		id, dbHW, err := lockRun(ctx, tx, runID)
		if err != nil {
			return err
		}
		if rc == nil || rc.hw != dbHW {
			if rc, err = loadRun(ctx, tx, runID, id, dbHW); err != nil {
				return err
			}
		}
		hw = rc.hw
		if err := checkDuplicatesPG(ctx, tx, id, runID, rc.hw, seqs, serr, records); err != nil {
			if isRequestError(err) {
				reqErr = err
				return errRollback
			}
			return err
		}
		var b pgBatch
		reqErr = p.applyPG(rc, runID, records, seqs, serr, &b)
		if len(b.seqs) == 0 {
			hw = dbHW
			return errRollback
		}
		if err := p.writePG(ctx, tx, id, runID, rc, &b); err != nil {
			return err
		}
		hw = rc.hw
		stored = true
		return nil
	})
	if errors.Is(err, errRollback) {
		err = nil
	}
	if err != nil {
		// Whether the commit happened is not known: forget the state
		// folded in memory; the next append reads the run back.
		return 0, fmt.Errorf("append run %s: %w", runID, classify(err))
	}
	// Committed, or rolled back before anything was folded: rc is the
	// database's run.
	p.putCache(runID, rc)
	if stored {
		p.notify()
	}
	return hw, reqErr
}

// errRollback ends a transaction that stores nothing.
var errRollback = errors.New("store: nothing to store")

// lockRun returns the run's row id and mark with the row locked until the
// transaction ends, creating the row for a new run (the row goes away with
// a rollback).
func lockRun(ctx context.Context, tx pgx.Tx, runID string) (int64, uint64, error) {
	var id, hw int64
	err := tx.QueryRow(ctx, "SELECT id, high_water FROM runs WHERE run_id = $1 FOR UPDATE", runID).Scan(&id, &hw)
	if errors.Is(err, pgx.ErrNoRows) {
		// Two hubs creating the run at once: the second waits on the
		// unique index, then finds the first's row.
		if _, err := tx.Exec(ctx, "INSERT INTO runs (run_id) VALUES ($1) ON CONFLICT (run_id) DO NOTHING", runID); err != nil {
			return 0, 0, err
		}
		err = tx.QueryRow(ctx, "SELECT id, high_water FROM runs WHERE run_id = $1 FOR UPDATE", runID).Scan(&id, &hw)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("lock run %s: %w", runID, err)
	}
	return id, uint64(hw), nil
}

// loadRun reads a run's state, digest and tiers' builder.
func loadRun(ctx context.Context, tx pgx.Tx, runID string, id int64, hw uint64) (*runCache, error) {
	rc := &runCache{state: replay.NewState(runID), digest: NewDigest(), roll: rollup.NewBuilder()}
	if hw == 0 {
		return rc, nil
	}
	var state, digest, roll []byte
	if err := tx.QueryRow(ctx, "SELECT state, digest, rollup FROM runs WHERE id = $1", id).Scan(&state, &digest, &roll); err != nil {
		return nil, fmt.Errorf("load run %s: %w", runID, err)
	}
	if err := rc.state.UnmarshalBinary(state); err != nil {
		return nil, fmt.Errorf("load run %s: %w", runID, err)
	}
	d, err := unmarshalDigest(digest)
	if err != nil {
		return nil, fmt.Errorf("load run %s: digest: %w", runID, err)
	}
	rc.digest = d
	if roll == nil {
		rc.roll.MarkStale()
	} else if err := rc.roll.UnmarshalBinary(roll); err != nil {
		return nil, fmt.Errorf("load run %s: rollup: %w", runID, err)
	}
	rc.hw = rc.state.LastSeq()
	if rc.hw != hw {
		return nil, fmt.Errorf("load run %s: state covers seq %d but the mark is %d", runID, rc.hw, hw)
	}
	return rc, nil
}

// checkDuplicatesPG compares the records at or below the mark with the
// stored ones before anything is written.
func checkDuplicatesPG(ctx context.Context, tx pgx.Tx, id int64, runID string, hw uint64, seqs []uint64, serr []error, records [][]byte) error {
	lo, hi := uint64(0), uint64(0)
	for i, s := range seqs {
		if serr[i] != nil || s > hw {
			continue
		}
		if lo == 0 || s < lo {
			lo = s
		}
		hi = max(hi, s)
	}
	if lo == 0 {
		return nil
	}
	stored := make(map[uint64][]byte, hi-lo+1)
	rows, err := tx.Query(ctx, "SELECT seq, data FROM records WHERE run = $1 AND seq BETWEEN $2 AND $3", id, int64(lo), int64(hi))
	if err != nil {
		return fmt.Errorf("run %s: read duplicates: %w", runID, err)
	}
	var (
		seq  int64
		data []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&seq, &data}, func() error {
		stored[uint64(seq)] = data
		data = nil
		return nil
	})
	if err != nil {
		return fmt.Errorf("run %s: read duplicates: %w", runID, err)
	}
	for i, s := range seqs {
		if serr[i] != nil || s > hw {
			continue
		}
		got, ok := stored[s]
		if !ok {
			return fmt.Errorf("run %s: record seq %d below the mark %d is missing", runID, s, hw)
		}
		if !bytes.Equal(got, records[i]) {
			return &MismatchError{RunID: runID, Seq: s}
		}
	}
	return nil
}

// applyPG folds the records that extend the run into rc and b, stopping at
// the first one it cannot store, whose refusal it returns.
func (p *Postgres) applyPG(rc *runCache, runID string, records [][]byte, seqs []uint64, serr []error, b *pgBatch) error {
	for i, data := range records {
		if serr[i] != nil {
			return &RecordError{RunID: runID, Index: i, Err: fmt.Errorf("does not decode: %w", serr[i])}
		}
		seq := seqs[i]
		if seq <= rc.hw {
			continue
		}
		if seq > rc.hw+1 {
			return &GapError{RunID: runID, HighWater: rc.hw, Seq: seq}
		}
		if rc.state.Finished() {
			return &RecordError{RunID: runID, Seq: seq, Index: i,
				Err: fmt.Errorf("follows the run's exit record at seq %d", rc.hw)}
		}
		ev, err := replay.DecodeEvent(data)
		if err != nil {
			return &RecordError{RunID: runID, Seq: seq, Index: i, Err: fmt.Errorf("does not decode: %w", err)}
		}
		switch ev.Kind() {
		case replay.KindHistory:
			row, err := prepareChartRow(seq, data, &ev)
			if err != nil {
				return &RecordError{RunID: runID, Seq: seq, Index: i, Err: fmt.Errorf("does not decode: %w", err)}
			}
			if !rc.roll.Stale() {
				err := rc.roll.Add(seq, row.t, row.step, row.vals, func(blk *rollup.Block) error {
					b.blocks = append(b.blocks, &rollupBlock{level: int16(blk.Level), idx: int64(blk.Index), data: rollup.AppendBlock(nil, blk)})
					return nil
				})
				if err != nil {
					return fmt.Errorf("run %s seq %d: tiers: %w", runID, seq, err)
				}
			}
			b.seqs = append(b.seqs, int64(seq))
			b.data = append(b.data, data)
			b.steps = append(b.steps, &row.step)
			rc.digest.Add(data)
			rc.state.ApplyEvent(&ev)
			rc.hw = seq
			continue
		case replay.KindRewind:
			var r runlogv1.Record
			if err := proto.Unmarshal(data, &r); err != nil {
				return &RecordError{RunID: runID, Seq: seq, Index: i, Err: fmt.Errorf("does not decode: %w", err)}
			}
			step := r.GetRewind().GetStep()
			// Rows of this batch before the rewind are dropped here; rows
			// already stored with one UPDATE at the lowest rewind step.
			for j, st := range b.steps {
				if st != nil && *st >= step {
					b.steps[j] = nil
				}
			}
			if !b.rewind || step < b.rewStep {
				b.rewind, b.rewStep = true, step
			}
			rc.roll.MarkStale()
		case replay.KindOutput:
			b.oseqs = append(b.oseqs, int64(seq))
		}
		b.seqs = append(b.seqs, int64(seq))
		b.data = append(b.data, data)
		b.steps = append(b.steps, nil)
		rc.digest.Add(data)
		rc.state.ApplyEvent(&ev)
		rc.hw = seq
	}
	return nil
}

// writePG sends what an append stores in one round trip.
func (p *Postgres) writePG(ctx context.Context, tx pgx.Tx, id int64, runID string, rc *runCache, b *pgBatch) error {
	snap, err := rc.state.MarshalBinary()
	if err != nil {
		return err
	}
	dg, err := rc.digest.marshal()
	if err != nil {
		return fmt.Errorf("run %s digest: %w", runID, err)
	}
	var roll []byte
	if !rc.roll.Stale() {
		if roll, err = rc.roll.MarshalBinary(); err != nil {
			return fmt.Errorf("run %s rollup: %w", runID, err)
		}
	}
	now := p.now()
	e := indexEntry(rc, now.UnixNano())
	entry, err := proto.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode run %s index entry: %w", runID, err)
	}

	var batch pgx.Batch
	if len(b.oseqs) > 0 {
		batch.Queue("INSERT INTO output (run, seq) SELECT $1, unnest($2::bigint[])", id, b.oseqs)
	}
	if rc.roll.Stale() {
		batch.Queue("DELETE FROM tiers WHERE run = $1", id)
	} else {
		for _, blk := range b.blocks {
			batch.Queue("INSERT INTO tiers (run, level, idx, block) VALUES ($1, $2, $3, $4)", id, blk.level, blk.idx, blk.data)
		}
	}
	batch.Queue(`UPDATE runs SET high_water = $2, project = $3, entry = $4, state = $5, digest = $6, rollup = $7, updated_at = $8
		WHERE id = $1`, id, int64(rc.hw), e.GetProject(), entry, snap, dg, roll, now)
	batch.Queue("SELECT pg_notify($1, $2)", notifyChannel, runID)
	if b.rewind {
		// Before the rows of this batch go in: the rewind clears only
		// rows stored before it.
		if _, err := tx.Exec(ctx, "UPDATE records SET step = NULL WHERE run = $1 AND step >= $2", id, b.rewStep); err != nil {
			return fmt.Errorf("rewind run %s: %w", runID, err)
		}
	}
	// COPY: the records in PostgreSQL's binary format, one round trip.
	row := make([]any, 4)
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"records"}, []string{"run", "seq", "data", "step"},
		pgx.CopyFromSlice(len(b.seqs), func(i int) ([]any, error) {
			row[0], row[1], row[2], row[3] = id, b.seqs[i], b.data[i], b.steps[i]
			return row, nil
		}))
	if err != nil {
		return fmt.Errorf("store run %s records %d..%d: %w", runID, b.seqs[0], b.seqs[len(b.seqs)-1], err)
	}
	if err := tx.SendBatch(ctx, &batch).Close(); err != nil {
		return fmt.Errorf("store run %s records %d..%d: %w", runID, b.seqs[0], b.seqs[len(b.seqs)-1], err)
	}
	return nil
}

// HighWater implements Store.
func (p *Postgres) HighWater(ctx context.Context, runID string) (uint64, error) {
	if err := p.enter(); err != nil {
		return 0, err
	}
	defer p.leave()
	var hw int64
	err := p.pool.QueryRow(ctx, "SELECT high_water FROM runs WHERE run_id = $1", runID).Scan(&hw)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("run %s: high-water mark: %w", runID, classify(err))
	}
	return uint64(hw), nil
}

// ListRuns implements Store.
func (p *Postgres) ListRuns(ctx context.Context, opts ListOptions) ([]*runlogv1.HubRun, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	var (
		rows pgx.Rows
		err  error
	)
	if opts.Project == "" {
		rows, err = p.pool.Query(ctx, "SELECT run_id, entry FROM runs WHERE high_water > 0 ORDER BY run_id")
	} else {
		rows, err = p.pool.Query(ctx, "SELECT run_id, entry FROM runs WHERE high_water > 0 AND project = $1 ORDER BY run_id", opts.Project)
	}
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", classify(err))
	}
	var (
		out   []*runlogv1.HubRun
		id    string
		entry []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &entry}, func() error {
		e := new(runlogv1.HubRun)
		if err := proto.Unmarshal(entry, e); err != nil {
			return fmt.Errorf("run %s: index entry: %w", id, err)
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", classify(err))
	}
	return out, nil
}

// Run implements Store.
func (p *Postgres) Run(ctx context.Context, runID string) (*runlogv1.HubRun, *runlogv1.RunState, error) {
	if err := p.enter(); err != nil {
		return nil, nil, err
	}
	defer p.leave()
	var entry, state []byte
	err := p.pool.QueryRow(ctx, "SELECT entry, state FROM runs WHERE run_id = $1 AND high_water > 0", runID).Scan(&entry, &state)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, fmt.Errorf("run %s: %w", runID, ErrNotFound)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("run %s: %w", runID, classify(err))
	}
	e := new(runlogv1.HubRun)
	if err := proto.Unmarshal(entry, e); err != nil {
		return nil, nil, fmt.Errorf("run %s: index entry: %w", runID, err)
	}
	st := replay.NewState(runID)
	if err := st.UnmarshalBinary(state); err != nil {
		return nil, nil, fmt.Errorf("run %s: %w", runID, err)
	}
	return e, st.Proto(), nil
}

// runRow returns a run's row id and mark, ErrNotFound for a run without
// records.
func (p *Postgres) runRow(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, runID string) (int64, uint64, []byte, error) {
	var (
		id, hw int64
		roll   []byte
	)
	err := q.QueryRow(ctx, "SELECT id, high_water, rollup FROM runs WHERE run_id = $1 AND high_water > 0", runID).Scan(&id, &hw, &roll)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, nil, fmt.Errorf("run %s: %w", runID, ErrNotFound)
	}
	if err != nil {
		return 0, 0, nil, fmt.Errorf("run %s: %w", runID, classify(err))
	}
	return id, uint64(hw), roll, nil
}

// pageRows bounds how many rows one query of a paged read returns.
const pageRows = 4096

// Records implements Store.
func (p *Postgres) Records(ctx context.Context, runID string, from uint64, fn func(seq uint64, data []byte) error) error {
	if err := p.enter(); err != nil {
		return err
	}
	defer p.leave()
	id, hw, _, err := p.runRow(ctx, p.pool, runID)
	if err != nil {
		return err
	}
	src := &pgSource{p: p, ctx: ctx, runID: runID, id: id, to: hw,
		sql: "SELECT seq, data FROM records WHERE run = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq LIMIT $4"}
	return src.Scan(from, fn)
}

// pgSource pages through a query of (seq, data) rows in seq order, up to
// seq to; it is a replay.Source.
type pgSource struct {
	p     *Postgres
	ctx   context.Context
	runID string
	id    int64
	to    uint64
	first uint64 // every scan starts here or later
	sql   string // $1 run, $2 from, $3 to, $4 limit, then args
	args  []any
}

var _ replay.Source = (*pgSource)(nil)

func (s *pgSource) Scan(from uint64, fn func(seq uint64, data []byte) error) error {
	from = max(from, s.first, 1)
	var (
		seq  int64
		data []byte
	)
	for from <= s.to {
		args := append([]any{s.id, int64(from), int64(s.to), pageRows}, s.args...)
		rows, err := s.p.pool.Query(s.ctx, s.sql, args...)
		if err != nil {
			return fmt.Errorf("read run %s: %w", s.runID, classify(err))
		}
		n := 0
		_, err = pgx.ForEachRow(rows, []any{&seq, &data}, func() error {
			n++
			from = uint64(seq) + 1
			return fn(uint64(seq), data)
		})
		if err != nil {
			return classifyRead(s.runID, err)
		}
		if n < pageRows {
			return nil
		}
	}
	return nil
}

func classifyRead(runID string, err error) error {
	var pe *pgconn.PgError
	var ce *pgconn.ConnectError
	if errors.As(err, &pe) || errors.As(err, &ce) {
		return fmt.Errorf("read run %s: %w", runID, classify(err))
	}
	return err // the callback's own error
}

// historySQL selects live history rows with their records, in seq order,
// within a step range ($5, $6).
const historySQL = `SELECT seq, data FROM records
	WHERE run = $1 AND seq >= $2 AND seq <= $3 AND step >= $5 AND step <= $6
	ORDER BY seq LIMIT $4`

// historySource returns a source of the run's live history rows whose steps
// are within [lo, hi], bounded to the seqs that hold such rows (found on
// the step index) so that a narrow step range reads only its part of the
// run.
func (p *Postgres) historySource(ctx context.Context, runID string, id int64, hw uint64, lo, hi int64) (*pgSource, bool, error) {
	var first, last *int64
	err := p.pool.QueryRow(ctx, "SELECT min(seq), max(seq) FROM records WHERE run = $1 AND step >= $2 AND step <= $3", id, lo, hi).Scan(&first, &last)
	if err != nil {
		return nil, false, fmt.Errorf("history of run %s: %w", runID, classify(err))
	}
	if first == nil {
		return nil, false, nil
	}
	src := &pgSource{p: p, ctx: ctx, runID: runID, id: id, first: uint64(*first), to: min(hw, uint64(*last)), sql: historySQL, args: []any{lo, hi}}
	return src, true, nil
}

// History implements Store: the rows come from the live history rows'
// step index, never from a scan of the run's other records.
func (p *Postgres) History(ctx context.Context, runID string, q HistoryQuery, fn func(*runlogv1.HistorySample) error) error {
	if err := p.enter(); err != nil {
		return err
	}
	defer p.leave()
	id, hw, _, err := p.runRow(ctx, p.pool, runID)
	if err != nil {
		return err
	}
	lo, hi := int64(-1<<63), int64(1<<63-1)
	if q.MinStep > 0 {
		lo = q.MinStep
	}
	if q.HasMaxStep {
		hi = q.MaxStep
	}
	src, ok, err := p.historySource(ctx, runID, id, hw, lo, hi)
	if err != nil || !ok {
		return err
	}
	if q.MaxSamples > 0 {
		return history(src, 0, q, fn)
	}
	// Page by page, so that each page is read once: the source holds only
	// live rows, so a page is a complete history of its own.
	var page pageSource
	err = src.Scan(1, func(seq uint64, data []byte) error {
		page.add(seq, data)
		if len(page.seqs) < pageRows {
			return nil
		}
		err := history(&page, 0, q, fn)
		page.reset()
		return err
	})
	if err != nil {
		return err
	}
	if len(page.seqs) > 0 {
		return history(&page, 0, q, fn)
	}
	return nil
}

// pageSource is a replay.Source of records held in memory.
type pageSource struct {
	seqs []uint64
	data [][]byte
	buf  []byte
}

func (s *pageSource) add(seq uint64, data []byte) {
	s.seqs = append(s.seqs, seq)
	off := len(s.buf)
	s.buf = append(s.buf, data...)
	s.data = append(s.data, s.buf[off:len(s.buf):len(s.buf)])
}

func (s *pageSource) reset() {
	s.seqs, s.data = s.seqs[:0], s.data[:0]
	s.buf = nil
}

func (s *pageSource) Scan(from uint64, fn func(seq uint64, data []byte) error) error {
	for i, seq := range s.seqs {
		if seq < from {
			continue
		}
		if err := fn(seq, s.data[i]); err != nil {
			return err
		}
	}
	return nil
}

// Chart answers a chart query from the run's history tiers, in one
// read-only snapshot (see Bolt.Chart).
func (p *Postgres) Chart(ctx context.Context, runID string, q rollup.Query) (*rollup.Result, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	var (
		res   *rollup.Result
		stale bool
		id    int64
		hw    uint64
	)
	err := pgx.BeginTxFunc(ctx, p.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var (
			roll []byte
			err  error
		)
		id, hw, roll, err = p.runRow(ctx, tx, runID)
		if err != nil {
			return err
		}
		b := rollup.NewBuilder()
		if roll == nil {
			stale = true
			return nil
		}
		if err := b.UnmarshalBinary(roll); err != nil {
			return fmt.Errorf("run %s: rollup: %w", runID, err)
		}
		if b.Stale() {
			stale = true
			return nil
		}
		res, err = rollup.Run(b, &pgTiers{ctx: ctx, tx: tx, runID: runID, id: id}, q)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("chart run %s: %w", runID, classify(err))
	}
	if !stale {
		return res, nil
	}
	src, ok, err := p.historySource(ctx, runID, id, hw, -1<<63, 1<<63-1)
	if err != nil {
		return nil, err
	}
	if !ok {
		src = &pgSource{p: p, ctx: ctx, runID: runID, id: id, to: 0}
	}
	return chartFromSource(src, runID, q)
}

// pgTiers reads a run's tiers and rows inside one transaction.
type pgTiers struct {
	ctx   context.Context
	tx    pgx.Tx
	runID string
	id    int64
	blk   rollup.Block
}

func (r *pgTiers) Blocks(level int, first uint64, fn func(*rollup.Block) bool) error {
	var (
		idx  int64
		data []byte
	)
	// Pages of blocks, so that a chart over a long run is a few round
	// trips, not one per block.
	const page = 2048
	for {
		rows, err := r.tx.Query(r.ctx, "SELECT idx, block FROM tiers WHERE run = $1 AND level = $2 AND idx >= $3 ORDER BY idx LIMIT $4",
			r.id, int16(level), int64(first), page)
		if err != nil {
			return err
		}
		n := 0
		stop := false
		_, err = pgx.ForEachRow(rows, []any{&idx, &data}, func() error {
			n++
			first = uint64(idx) + 1
			if stop {
				return nil
			}
			if err := rollup.DecodeBlock(data, &r.blk); err != nil {
				return fmt.Errorf("run %s tier %d: %w", r.runID, level, err)
			}
			stop = !fn(&r.blk)
			return nil
		})
		if err != nil || stop || n < page {
			return err
		}
	}
}

func (r *pgTiers) Rows(from, to uint64, fn func(seq uint64, t int64, step int64, vals []rollup.Value) bool) error {
	rows, err := r.tx.Query(r.ctx, `SELECT seq, data FROM records
		WHERE run = $1 AND seq >= $2 AND seq <= $3 AND step IS NOT NULL ORDER BY seq`, r.id, int64(from), int64(to))
	if err != nil {
		return err
	}
	var (
		seq  int64
		data []byte
		stop bool
	)
	_, err = pgx.ForEachRow(rows, []any{&seq, &data}, func() error {
		if stop {
			return nil
		}
		ev, err := replay.DecodeEvent(data)
		if err != nil {
			return &CorruptError{RunID: r.runID, Seq: uint64(seq), Err: err}
		}
		row, err := prepareChartRow(uint64(seq), data, &ev)
		if err != nil {
			return fmt.Errorf("run %s seq %d: %w", r.runID, seq, err)
		}
		stop = !fn(uint64(seq), row.t, row.step, row.vals)
		return nil
	})
	return err
}

package wal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"google.golang.org/protobuf/proto"

	"github.com/runlog/runlog/internal/dirsync"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wire"
)

var (
	bucketRecords = []byte("records")
	bucketCursors = []byte("cursors")
	bucketClients = []byte("clients")
	bucketMeta    = []byte("meta")

	keyFormat   = []byte("format")
	keyLastStep = []byte("last_step")
)

const formatVersion = "1"

// Options configure Open. The zero value is a working default.
type Options struct {
	// ReadOnly opens an existing log with a shared lock; Append and SetCursor
	// fail. The log must exist. A read-only open succeeds on a log whose last
	// record is damaged, so it can be verified; a writable open fails with a
	// *CorruptError.
	ReadOnly bool
	// MustExist makes Open fail with ErrNotExist instead of creating a log.
	MustExist bool
	// LockTimeout is how long Open waits for another process to release the
	// file before it fails with ErrLocked. Zero means 500ms.
	LockTimeout time.Duration
	// InitialMmapSize reserves address space up front so that readers never
	// block the writer while bbolt grows its map. Zero means 256 MiB; it is
	// virtual memory, not resident memory.
	InitialMmapSize int
	// Now returns the time stamped on appended records. Nil means time.Now.
	Now func() time.Time
	// Entropy supplies the random part of each new millisecond's ULID. Nil
	// means a generator seeded from the clock and the process id; tests that
	// need reproducible ids pass a seeded one.
	Entropy rand.Source
}

// Log is one run's write-ahead log. It is safe for concurrent use: appends
// are serialised, reads run beside them.
type Log struct {
	path string
	db   *bolt.DB
	now  func() time.Time
	ro   bool
	// damage is what the page walk at open found, nil for a sound file.
	// Only a read-only log can have one; readers stop before its FirstBad.
	damage *fileDamage
	// refused is the first damaged record a reader of this handle met
	// (a checksum or key that does not hold); once set, appends fail
	// with it, so nothing is ever written after a hole in the log.
	refused atomic.Pointer[CorruptError]

	// mu protects the fields below, which mirror the end of the log.
	mu       sync.Mutex
	closed   bool
	lastSeq  uint64
	lastID   ulid.ULID
	lastTime int64
	lastStep int64 // step floor for the next history row, -1 when none
	finished bool
	clients  map[string]uint64
	changed  chan struct{} // closed and replaced after every append
	rng      rand.Source   // used under appendMu

	// touched counts bytes written or scanned since the mapped pages were
	// last released; see noteTouched.
	touched atomic.Int64

	// appendMu serialises Append so that stamping and committing happen in
	// log order without holding mu across the fsync.
	appendMu sync.Mutex
	buf      []byte // protected by appendMu: encoding buffer reused across batches
}

// Open opens the log at path, creating it and its directory unless
// opts.ReadOnly or opts.MustExist is set.
func Open(path string, opts Options) (*Log, error) {
	created := false
	if opts.ReadOnly || opts.MustExist {
		if _, err := os.Stat(path); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("open wal %s: %w", path, ErrNotExist)
			}
			return nil, fmt.Errorf("open wal %s: %w", path, err)
		}
	} else {
		if _, err := dirsync.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("open wal %s: %w", path, err)
		}
		_, err := os.Lstat(path)
		created = errors.Is(err, os.ErrNotExist)
	}
	var damage *fileDamage
	if !created {
		d, err := walkFile(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("open wal %s: %w", path, err)
		}
		if d != nil {
			cerr := &CorruptError{Path: path, Seq: d.FirstBad, Err: d.Err}
			// bbolt would walk the damaged pages at a writable open in a
			// goroutine of its own and die there; a reader may look at
			// the records before the damage.
			if !opts.ReadOnly || d.NoMeta || d.FirstBad == 1 && d.Kind == ProblemBolt {
				return nil, fmt.Errorf("open wal %s: %w", path, cerr)
			}
			// A key out of place on sound pages is no danger to a
			// reader: Scan and Verify find it themselves, at the same seq.
			if d.Kind == ProblemBolt {
				damage = d
			}
		}
	}
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = 500 * time.Millisecond
	}
	mmap := opts.InitialMmapSize
	if mmap <= 0 {
		mmap = 256 << 20
	}
	db, err := openBolt(path, &bolt.Options{
		Timeout:         timeout,
		ReadOnly:        opts.ReadOnly,
		InitialMmapSize: mmap,
		// The freelist is rebuilt on open instead of written on every commit:
		// one less page per fsync on the hot path.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("open wal %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("open wal %s: %w", path, err)
	}
	l := &Log{
		path:     path,
		db:       db,
		now:      opts.Now,
		ro:       opts.ReadOnly,
		damage:   damage,
		lastStep: -1,
		clients:  make(map[string]uint64),
		changed:  make(chan struct{}),
		rng:      opts.Entropy,
	}
	if l.rng == nil {
		l.rng = rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid()))
	}
	if l.now == nil {
		l.now = time.Now
	}
	if !opts.ReadOnly {
		if err := l.init(); err != nil {
			db.Close()
			return nil, fmt.Errorf("open wal %s: %w", path, err)
		}
		// The file and its first commit are fsynced; its directory entry
		// is not until the directory is. Without this an acknowledged
		// run can vanish whole in a power cut.
		if created {
			if err := dirsync.Sync(filepath.Dir(path)); err != nil {
				db.Close()
				return nil, fmt.Errorf("open wal %s: %w", path, err)
			}
		}
	}
	if err := l.load(); err != nil {
		db.Close()
		return nil, err
	}
	if !opts.ReadOnly && !created {
		// The page walk sees the file's structure, not the records: a
		// flipped bit inside a value passes it. A writer reads every
		// record once, so that it never appends behind a hole (Scan
		// notes the damage, and Refused reports it); its valid prefix
		// still reads, and a sender still keeps its cursor.
		err := l.Scan(1, func(uint64, []byte) error { return nil })
		var ce *CorruptError
		if err != nil && !errors.As(err, &ce) {
			db.Close()
			return nil, fmt.Errorf("open wal %s: %w", path, err)
		}
	}
	return l, nil
}

// Refused returns why the log takes no more records: a *CorruptError
// naming the first damaged record that the scan of a writable open, or any
// reader since, met. It returns nil while appends are taken (and always
// for a read-only log, which takes none anyway).
func (l *Log) Refused() error {
	if ce := l.refused.Load(); ce != nil {
		return ce
	}
	return nil
}

// noteDamage refuses appends from now on with ce, the first damaged record
// a reader met.
func (l *Log) noteDamage(ce *CorruptError) {
	if !l.ro {
		l.refused.CompareAndSwap(nil, ce)
	}
}

func (l *Log) init() error {
	return l.db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketRecords, bucketCursors, bucketClients, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keyFormat); v == nil {
			return meta.Put(keyFormat, []byte(formatVersion))
		} else if string(v) != formatVersion {
			return fmt.Errorf("unknown log format %q (this build reads %q)", v, formatVersion)
		}
		return nil
	})
}

// openBolt opens the bbolt file, turning a panic or a fault in mapped
// memory during the open into an error.
func openBolt(path string, opts *bolt.Options) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = &CorruptError{Path: path, Err: fmt.Errorf("bbolt: %v", r)}
		}
	}()
	return bolt.Open(path, 0o600, opts)
}

// errFault is returned by view for a panic or a fault while reading the
// file: bbolt trusts its pages, and a damaged or truncated file makes it
// panic or touch memory past the end of the file.
var errFault = errors.New("damaged page")

// view runs fn in a read transaction; a panic or a fault in mapped memory
// becomes an error wrapping errFault. bbolt's View rolls the transaction back
// when fn panics.
func (l *Log) view(fn func(tx *bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errFault, r)
		}
	}()
	return l.db.View(fn)
}

// firstBad returns the first seq the page walk found damaged, 0 for none.
func (l *Log) firstBad() uint64 {
	if l.damage == nil {
		return 0
	}
	return l.damage.FirstBad
}

// damageError is the error for reaching the damaged record.
func (l *Log) damageError() error {
	return &CorruptError{Path: l.path, Seq: l.damage.FirstBad, Err: l.damage.Err}
}

// Damage returns the damage found when the log was opened: a *CorruptError
// whose Seq is the first record that cannot be read (0 when every record can
// and the damage lies elsewhere in the file), or nil for a sound file.
func (l *Log) Damage() error {
	if l.damage == nil {
		return nil
	}
	return l.damageError()
}

// load reads the end of the log into memory.
func (l *Log) load() error {
	err := l.view(func(tx *bolt.Tx) error {
		recs := tx.Bucket(bucketRecords)
		if recs == nil {
			return fmt.Errorf("open wal %s: not a runlog log (no records bucket)", l.path)
		}
		if fb := l.firstBad(); fb != 0 {
			// Never touch the damaged pages; the log ends before them.
			l.lastSeq = fb - 1
			return nil
		}
		if k, v := recs.Cursor().Last(); k != nil {
			if len(k) != 8 {
				return &CorruptError{Path: l.path, Seq: l.lastSeq + 1, Err: fmt.Errorf("last key of %d bytes", len(k))}
			}
			seq := binary.BigEndian.Uint64(k)
			rec, err := l.decode(seq, v)
			switch {
			case err == nil:
				l.lastTime = rec.GetTimeUnixNano()
				if id := rec.GetId(); len(id) == len(l.lastID) {
					copy(l.lastID[:], id)
				}
				l.finished = rec.GetExit() != nil
			case !l.ro:
				// Appending needs the last ULID and time; a writer must not
				// build on a record it cannot read.
				return err
			}
			// A reader opens a damaged log to audit it: Verify reports the
			// record and Scan stops at it with the same error.
			l.lastSeq = seq
		}
		if b := tx.Bucket(bucketClients); b != nil {
			err := b.ForEach(func(k, v []byte) error {
				if len(v) == 8 {
					l.clients[string(k)] = binary.BigEndian.Uint64(v)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		if b := tx.Bucket(bucketMeta); b != nil {
			if v := b.Get(keyLastStep); len(v) == 8 {
				l.lastStep = int64(binary.BigEndian.Uint64(v))
			}
		}
		return nil
	})
	if errors.Is(err, errFault) {
		return fmt.Errorf("open wal %s: %w", l.path, &CorruptError{Path: l.path, Seq: l.firstBad(), Err: err})
	}
	return err
}

// Path returns the file the log lives in.
func (l *Log) Path() string { return l.path }

// LastSeq returns the sequence of the last durable record, 0 for an empty log.
func (l *Log) LastSeq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastSeq
}

// LastStep returns the lowest step the next history row may use: the last
// row's step, or the step of a later rewind. It is -1 when the run has no
// history yet.
func (l *Log) LastStep() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastStep
}

// Finished reports whether the log ends with an exit record.
func (l *Log) Finished() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.finished
}

// ClientSeq returns the highest client_seq of clientID held in the log.
func (l *Log) ClientSeq(clientID string) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.clients[clientID]
}

// Changed returns a channel that is closed after the next successful Append
// (or Close). Take it before checking LastSeq so no append is missed.
func (l *Log) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// Append stamps recs with the next sequences, a ULID and the time, writes
// them in one transaction and returns after the commit is on disk. On error
// nothing of the batch is in the log and recs' stamps are meaningless.
//
// The records' client_id and client_seq are kept as given; the log remembers
// the highest client_seq per client id.
func (l *Log) Append(recs []*runlogv1.Record) error {
	if len(recs) == 0 {
		return nil
	}
	// One stamping path: encode each record's body (everything but the
	// fields the log stamps) and append it as AppendEncoded does.
	encs := make([]Encoded, len(recs))
	for i, r := range recs {
		client, cseq := r.ClientId, r.ClientSeq
		r.Seq, r.Id, r.TimeUnixNano, r.ClientId, r.ClientSeq = 0, nil, 0, "", 0
		body, err := proto.Marshal(r)
		r.ClientId, r.ClientSeq = client, cseq
		if err != nil {
			return fmt.Errorf("append wal %s: encode record %d: %w", l.path, i, err)
		}
		encs[i] = Encoded{ClientID: client, ClientSeq: cseq, Body: body}
	}
	ids := make([]ulid.ULID, len(recs))
	first, now, err := l.appendEncoded(encs, ids, true)
	if err != nil {
		return err
	}
	for i, r := range recs {
		r.Seq, r.Id, r.TimeUnixNano = first+uint64(i), append(r.Id[:0], ids[i][:]...), now
	}
	return nil
}

// logEnd is the end of the log after an append: what the next one builds on.
type logEnd struct {
	seq      uint64
	id       ulid.ULID
	time     int64
	step     int64
	finished bool
}

// end returns the end of the log for an append, appendMu held: the append
// builds on it without holding mu across the commit.
func (l *Log) end() (logEnd, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return logEnd{}, ErrClosed
	}
	if l.finished {
		return logEnd{}, ErrFinished
	}
	return logEnd{seq: l.lastSeq, id: l.lastID, time: l.lastTime, step: l.lastStep}, nil
}

// write commits an encoded batch, appendMu held: the records buf[offs[i]:
// offs[i+1]] under seqs first, first+1, ..., the clients' high-waters and the
// step floor, in one transaction. Then it moves the log's end to e and wakes
// the waiters. On error the log is as it was.
func (l *Log) write(first uint64, buf []byte, offs []int, clients map[string]uint64, e logEnd) error {
	// Keep a small buffer for the next batch; a large one goes back to
	// the heap, or every run would pin its largest batch for its life.
	if cap(buf) <= keepBuf {
		l.buf = buf
	} else {
		l.buf = nil
	}
	n := len(offs) - 1
	prevStep := l.LastStep()
	err := l.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		b.FillPercent = 1.0
		var key [8]byte
		for i := range n {
			s := first + uint64(i)
			binary.BigEndian.PutUint64(key[:], s)
			if err := b.Put(key[:], buf[offs[i]:offs[i+1]]); err != nil {
				return fmt.Errorf("put seq %d: %w", s, err)
			}
		}
		cb := tx.Bucket(bucketClients)
		for c, cs := range clients {
			if cs <= l.ClientSeq(c) {
				continue
			}
			var v [8]byte
			binary.BigEndian.PutUint64(v[:], cs)
			if err := cb.Put([]byte(c), v[:]); err != nil {
				return fmt.Errorf("put client %s: %w", c, err)
			}
		}
		if e.step != prevStep {
			var v [8]byte
			binary.BigEndian.PutUint64(v[:], uint64(e.step))
			if err := tx.Bucket(bucketMeta).Put(keyLastStep, v[:]); err != nil {
				return fmt.Errorf("put last step: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append wal %s: %w", l.path, err)
	}

	l.mu.Lock()
	l.lastSeq, l.lastID, l.lastTime, l.lastStep = e.seq, e.id, e.time, e.step
	l.finished = e.finished
	for c, cs := range clients {
		if cs > l.clients[c] {
			l.clients[c] = cs
		}
	}
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
	l.noteTouched(offs[n])
	return nil
}

// nextID returns a ULID greater than prev: a fresh one when the millisecond
// moved on, prev plus one in the same millisecond (or when the clock is
// behind prev's time, as after a restart on a slower clock).
func (l *Log) nextID(prev ulid.ULID, ms uint64) ulid.ULID {
	if ms > prev.Time() {
		var id ulid.ULID
		if err := id.SetTime(ms); err == nil {
			hi, lo := l.rng.Uint64(), l.rng.Uint64()
			binary.BigEndian.PutUint16(id[6:8], uint16(hi))
			binary.BigEndian.PutUint64(id[8:16], lo)
			return id
		}
	}
	id := prev
	for i := len(id) - 1; i >= 6; i-- {
		id[i]++
		if id[i] != 0 {
			break
		}
	}
	return id
}

// Read returns up to max records (and about maxBytes of encoded records;
// at least one) starting at from, in one short read transaction. It returns
// no records and no error past the end of the log.
func (l *Log) Read(from uint64, max int, maxBytes int) ([]*runlogv1.Record, error) {
	if max <= 0 {
		max = 1024
	}
	if maxBytes <= 0 {
		maxBytes = 4 << 20
	}
	var out []*runlogv1.Record
	err := l.Scan(from, func(seq uint64, data []byte) error {
		r := new(runlogv1.Record)
		if err := proto.Unmarshal(data, r); err != nil {
			return &CorruptError{Path: l.path, Seq: seq, Err: err}
		}
		out = append(out, r)
		maxBytes -= len(data)
		if len(out) >= max || maxBytes <= 0 {
			return errStop
		}
		return nil
	})
	return out, err
}

var errStop = errors.New("stop")

// scanChunk bounds how many records one read transaction visits.
const scanChunk = 4096

// Scan calls fn with each record's sequence and encoded bytes from seq from
// to the end of the log as it is when each chunk is read, in short read
// transactions. data is valid only during the call. A checksum mismatch stops
// the scan with a *CorruptError. fn returning an error stops the scan; Scan
// returns that error unless it is the internal stop signal.
func (l *Log) Scan(from uint64, fn func(seq uint64, data []byte) error) error {
	if from == 0 {
		from = 1
	}
	for {
		if l.isClosed() {
			return ErrClosed
		}
		n, scanned := 0, 0
		next := from
		fb := l.firstBad()
		if fb != 0 && from >= fb {
			return l.damageError()
		}
		err := l.view(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketRecords).Cursor()
			var key [8]byte
			binary.BigEndian.PutUint64(key[:], from)
			for k, v := c.Seek(key[:]); k != nil && n < scanChunk; k, v = c.Next() {
				if err := checkKey(k, next); err != nil {
					ce := &CorruptError{Path: l.path, Seq: next, Err: err}
					l.noteDamage(ce)
					return ce
				}
				seq := next
				data, err := l.check(seq, v)
				if err != nil {
					return err
				}
				scanned += len(v)
				if err := fn(seq, data); err != nil {
					return err
				}
				n++
				next = seq + 1
				if next == fb {
					return l.damageError() // do not step onto the damage
				}
			}
			return nil
		})
		l.noteTouched(scanned)
		if errors.Is(err, errFault) {
			err = &CorruptError{Path: l.path, Seq: next, Err: err}
		}
		if errors.Is(err, errStop) {
			return nil
		}
		if err != nil {
			return err
		}
		if n < scanChunk {
			return nil
		}
		from = next
	}
}

// check verifies a stored value's checksum and returns the record bytes.
func (l *Log) check(seq uint64, v []byte) ([]byte, error) {
	data, err := wire.Unframe(v)
	if err != nil {
		ce := &CorruptError{Path: l.path, Seq: seq, Err: err}
		l.noteDamage(ce)
		return nil, ce
	}
	return data, nil
}

func (l *Log) decode(seq uint64, v []byte) (*runlogv1.Record, error) {
	data, err := l.check(seq, v)
	if err != nil {
		return nil, err
	}
	r := new(runlogv1.Record)
	if err := proto.Unmarshal(data, r); err != nil {
		return nil, &CorruptError{Path: l.path, Seq: seq, Err: err}
	}
	return r, nil
}

// Wait blocks until the log holds a record after seq, the log is closed
// (ErrClosed) or ctx is done.
func (l *Log) Wait(ctx context.Context, after uint64) error {
	for {
		l.mu.Lock()
		last, closed, ch := l.lastSeq, l.closed, l.changed
		l.mu.Unlock()
		if last > after {
			return nil
		}
		if closed {
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Cursor returns the sequence stored under name, 0 when there is none.
func (l *Log) Cursor(name string) (uint64, error) {
	var seq uint64
	err := l.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketCursors); b != nil {
			if v := b.Get([]byte(name)); len(v) == 8 {
				seq = binary.BigEndian.Uint64(v)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read cursor %s in %s: %w", name, l.path, err)
	}
	return seq, nil
}

// Cursors returns every named cursor.
func (l *Log) Cursors() (map[string]uint64, error) {
	out := make(map[string]uint64)
	err := l.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCursors)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(v) == 8 {
				out[string(k)] = binary.BigEndian.Uint64(v)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read cursors in %s: %w", l.path, err)
	}
	return out, nil
}

// SetCursor durably stores seq under name.
func (l *Log) SetCursor(name string, seq uint64) error {
	if name == "" {
		return fmt.Errorf("set cursor in %s: empty name", l.path)
	}
	if seq > l.LastSeq() {
		return fmt.Errorf("set cursor %s to %d in %s: %w", name, seq, l.path, ErrCursorAhead)
	}
	if l.isClosed() {
		return ErrClosed
	}
	err := l.db.Update(func(tx *bolt.Tx) error {
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], seq)
		return tx.Bucket(bucketCursors).Put([]byte(name), v[:])
	})
	if err != nil {
		return fmt.Errorf("set cursor %s in %s: %w", name, l.path, err)
	}
	return nil
}

// Meta returns the metadata value stored under key, nil when absent.
func (l *Log) Meta(key string) ([]byte, error) {
	var out []byte
	err := l.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketMeta); b != nil {
			if v := b.Get([]byte(key)); v != nil {
				out = append([]byte(nil), v...)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read meta %s in %s: %w", key, l.path, err)
	}
	return out, nil
}

// SetMeta durably stores value under key; a nil value deletes the key.
func (l *Log) SetMeta(key string, value []byte) error {
	if key == string(keyFormat) || key == string(keyLastStep) {
		return fmt.Errorf("set meta %s in %s: reserved key", key, l.path)
	}
	err := l.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta)
		if value == nil {
			return b.Delete([]byte(key))
		}
		return b.Put([]byte(key), value)
	})
	if err != nil {
		return fmt.Errorf("set meta %s in %s: %w", key, l.path, err)
	}
	return nil
}

// Size returns the disk space the log file takes, in bytes. bbolt grows a
// file in steps of up to 16 MiB that stay sparse until written, so the
// apparent size of a small run's file says little about its cost.
func (l *Log) Size() (int64, error) {
	fi, err := os.Stat(l.path)
	if err != nil {
		return 0, fmt.Errorf("size of wal %s: %w", l.path, err)
	}
	return diskUsage(fi), nil
}

func (l *Log) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// Close waits for an append in progress, wakes every waiter and closes the
// file. Calling Close twice is harmless.
func (l *Log) Close() error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.changed)
	l.mu.Unlock()
	if err := l.db.Close(); err != nil {
		return fmt.Errorf("close wal %s: %w", l.path, err)
	}
	return nil
}

// WriteTime returns the time the log's commits spent writing pages and
// syncing them to disk, summed since it was opened. The service's writer
// takes its difference around a commit as the commit's fsync time.
func (l *Log) WriteTime() time.Duration {
	st := l.db.Stats()
	return st.TxStats.GetWriteTime()
}

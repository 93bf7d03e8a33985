package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// Store holds synced runs. Implementations are safe for concurrent use.
type Store interface {
	// Append stores the records of runID that extend its high-water mark.
	// records are encoded runlog.v1.Record messages with consecutive
	// sequences, as the run's log stores them. Records at or below the mark
	// are skipped when their bytes equal the stored record's; one that
	// differs refuses the whole append with a *MismatchError, before any
	// record of it is stored. The first record beyond mark+1 stops the
	// append with a *GapError. A record that cannot be stored (it does not decode, or it
	// follows the run's exit record) stops it with a *RecordError; the
	// records before it are stored. Append returns the run's high-water mark
	// after it, durable when Append returns, also when it returns an error.
	Append(ctx context.Context, runID string, records [][]byte) (uint64, error)
	// HighWater returns the run's high-water mark, 0 for a run the store has
	// never seen.
	HighWater(ctx context.Context, runID string) (uint64, error)
	// ListRuns returns every run, ordered by run id.
	ListRuns(ctx context.Context, opts ListOptions) ([]*runlogv1.HubRun, error)
	// Run returns a run's index entry and its state folded from records
	// 1..HighWater. It fails with ErrNotFound for an unknown run.
	Run(ctx context.Context, runID string) (*runlogv1.HubRun, *runlogv1.RunState, error)
	// History calls fn with the run's live history rows (rewinds honoured)
	// restricted to the query's keys and step range, in log order.
	History(ctx context.Context, runID string, q HistoryQuery, fn func(*runlogv1.HistorySample) error) error
	// Records calls fn with each stored record of the run from seq from, in
	// sequence order. data is valid only during the call.
	Records(ctx context.Context, runID string, from uint64, fn func(seq uint64, data []byte) error) error
	// Close waits for appends in progress and releases the store.
	Close() error
}

// ListOptions filter ListRuns. The zero value lists every run.
type ListOptions struct {
	// Project restricts the list to one project.
	Project string
}

// HistoryQuery selects history rows. The zero value selects every key of
// every row.
type HistoryQuery struct {
	// Keys restricts rows to these keys; rows with none of them are skipped.
	// Empty means every key.
	Keys []string
	// MinStep and MaxStep bound the steps, both inclusive. MinStep zero or
	// below means no lower bound, HasMaxStep false no upper bound.
	MinStep    int64
	MaxStep    int64
	HasMaxStep bool
	// MaxSamples, when positive, returns at most that many rows, spread
	// evenly over the selected rows and always including the last one.
	MaxSamples int
}

// Errors returned by stores. Test with errors.Is.
var (
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("store: closed")
	// ErrNotFound is returned for a run the store does not hold.
	ErrNotFound = errors.New("store: run not found")
	// ErrLocked is returned by Open when another process holds the store.
	ErrLocked = errors.New("store: locked by another process")
	// ErrBadRunID is returned for a run id that is not
	// [A-Za-z0-9][A-Za-z0-9._-]{0,127}.
	ErrBadRunID = errors.New("store: invalid run id")
	// ErrGap matches every *GapError.
	ErrGap = errors.New("store: gap in sequence")
	// ErrBadRecord matches every *RecordError.
	ErrBadRecord = errors.New("store: bad record")
	// ErrMismatch matches every *MismatchError.
	ErrMismatch = errors.New("store: different record at a stored seq")
	// ErrUnavailable wraps a failure to reach the database (it restarts,
	// or the network fails): nothing of the call is known to be stored,
	// and the same call may succeed later.
	ErrUnavailable = errors.New("store: database unavailable")
)

// GapError is returned by Append when a record would leave a gap after the
// run's high-water mark. The sender resends from HighWater+1.
type GapError struct {
	RunID     string
	HighWater uint64 // the run's mark: records 1..HighWater are stored
	Seq       uint64 // the record that would leave the gap
}

func (e *GapError) Error() string {
	return fmt.Sprintf("run %s: record seq %d would leave a gap: the store holds records up to seq %d, send from %d",
		e.RunID, e.Seq, e.HighWater, e.HighWater+1)
}

// Is makes errors.Is(err, ErrGap) true.
func (e *GapError) Is(target error) bool { return target == ErrGap }

// MismatchError is returned by Append for a record at or below the run's
// high-water mark whose bytes differ from the record the store holds at that
// seq. Every record carries its run's random ULID and a time, so a resend of
// the same run never differs: another run uses the same run id. Nothing of
// the append is stored.
type MismatchError struct {
	RunID string
	Seq   uint64 // the seq whose stored record differs
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("run %s: the store holds a different record at seq %d: another run uses this run id", e.RunID, e.Seq)
}

// Is makes errors.Is(err, ErrMismatch) true.
func (e *MismatchError) Is(target error) bool { return target == ErrMismatch }

// RecordError is returned by Append for a record that cannot be stored.
type RecordError struct {
	RunID string
	Seq   uint64 // the record's seq, 0 when it could not be read
	Index int    // its position in the records passed to Append
	Err   error
}

func (e *RecordError) Error() string {
	if e.Seq == 0 {
		return fmt.Sprintf("run %s: record %d of the batch: %v", e.RunID, e.Index, e.Err)
	}
	return fmt.Sprintf("run %s: record seq %d: %v", e.RunID, e.Seq, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrBadRecord) true.
func (e *RecordError) Is(target error) bool { return target == ErrBadRecord }

// CorruptError reports a stored record whose checksum does not match.
type CorruptError struct {
	RunID string
	Seq   uint64
	Err   error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("run %s: corrupt stored record at seq %d: %v", e.RunID, e.Seq, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// ValidRunID reports whether id is a valid run id:
// [A-Za-z0-9][A-Za-z0-9._-]{0,127}. Run ids name directories on the machines
// that log them, so the hub holds itself to the same rule.
func ValidRunID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// Digest is the running content digest of a run: SHA-256 over its records in
// sequence order, each preceded by its length as a 4-byte big-endian number.
// The zero value is not usable; call NewDigest.
type Digest struct {
	h hash.Hash
}

// NewDigest returns the digest of an empty run.
func NewDigest() *Digest { return &Digest{h: sha256.New()} }

// Add appends one record's encoded bytes.
func (d *Digest) Add(data []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(data)))
	d.h.Write(n[:])
	d.h.Write(data)
}

// Sum returns the digest of the records added so far.
func (d *Digest) Sum() []byte { return d.h.Sum(nil) }

// marshal returns the hash's internal state so that it can be resumed.
func (d *Digest) marshal() ([]byte, error) {
	return d.h.(interface{ MarshalBinary() ([]byte, error) }).MarshalBinary()
}

// unmarshalDigest resumes a digest saved by marshal.
func unmarshalDigest(b []byte) (*Digest, error) {
	d := NewDigest()
	if err := d.h.(interface{ UnmarshalBinary([]byte) error }).UnmarshalBinary(b); err != nil {
		return nil, err
	}
	return d, nil
}

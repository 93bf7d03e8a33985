package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/runlog/runlog/wire"
)

// Problem kinds reported by Verify.
const (
	ProblemBolt      = "bolt"       // bbolt's own consistency check failed
	ProblemChecksum  = "checksum"   // stored CRC-32C does not match the bytes
	ProblemDecode    = "decode"     // the record bytes are not a valid Record
	ProblemSeq       = "seq"        // the record's seq disagrees with its key
	ProblemGap       = "gap"        // sequences are not 1, 2, 3, ...
	ProblemULID      = "ulid"       // a ULID is missing or not increasing
	ProblemTime      = "time"       // time went backwards beyond the tolerance
	ProblemCursor    = "cursor"     // a cursor points past the last record
	ProblemExit      = "exit"       // more than one exit record
	ProblemAfterExit = "after-exit" // records follow the exit record
	ProblemStructure = "structure"  // a bucket is missing
)

// Problem is one thing wrong with a log. Seq is 0 for the file as a whole.
type Problem struct {
	Seq     uint64
	Kind    string
	Message string
}

func (p Problem) String() string {
	if p.Seq == 0 {
		return fmt.Sprintf("%s: %s", p.Kind, p.Message)
	}
	return fmt.Sprintf("seq %d: %s: %s", p.Seq, p.Kind, p.Message)
}

// VerifyOptions tune Verify. The zero value is a working default.
type VerifyOptions struct {
	// TimeTolerance is how far a record's time may lie before the previous
	// record's. Zero means one second.
	TimeTolerance time.Duration
	// SkipBoltCheck skips bbolt's page-level check (the record checks still
	// run).
	SkipBoltCheck bool
}

// VerifyResult sums up a Verify run.
type VerifyResult struct {
	Records  uint64 // records visited
	LastSeq  uint64 // key of the last record
	Problems int    // problems reported
	// LastGood is the last sequence of the valid prefix: every record
	// 1..LastGood is intact and in order. FirstBad is the first record that
	// is not (0 when the log is clean).
	LastGood uint64
	FirstBad uint64
}

// Verify checks the whole log and calls fn for each problem found, in log
// order. It runs in one read transaction. It returns an error only when the
// file cannot be read at all.
func (l *Log) Verify(opts VerifyOptions, fn func(Problem)) (VerifyResult, error) {
	tol := opts.TimeTolerance
	if tol <= 0 {
		tol = time.Second
	}
	var res VerifyResult
	report := func(p Problem) {
		res.Problems++
		if p.Seq != 0 && (res.FirstBad == 0 || p.Seq < res.FirstBad) {
			res.FirstBad = p.Seq
		}
		if fn != nil {
			fn(p)
		}
	}
	if l.damage != nil {
		report(Problem{Seq: l.damage.FirstBad, Kind: l.damage.Kind, Message: l.damage.Err.Error()})
	}
	fb := l.firstBad()
	err := l.view(func(tx *bolt.Tx) error {
		// bbolt's check rebuilds the freelist in a goroutine that dies on
		// a damaged page; it runs only on a file the page walk passed.
		if !opts.SkipBoltCheck && l.damage == nil {
			for err := range tx.Check() {
				report(Problem{Kind: ProblemBolt, Message: err.Error()})
			}
		}
		b := tx.Bucket(bucketRecords)
		if b == nil {
			report(Problem{Kind: ProblemStructure, Message: "no records bucket"})
			return nil
		}
		var (
			expect   uint64 = 1
			prevID   []byte
			prevTime int64
			exitSeq  uint64
			good     = true
		)
		c := b.Cursor()
		for k, v := c.First(); k != nil && (fb == 0 || expect < fb); k, v = c.Next() {
			res.Records++
			if err := checkKey(k, expect); err != nil {
				// The same first bad seq as every reader's: the first
				// one not found intact in its place.
				kind := ProblemGap
				if len(k) != 8 {
					kind = ProblemSeq
				}
				report(Problem{Seq: expect, Kind: kind, Message: err.Error()})
				good = false
				if len(k) != 8 {
					expect++
					continue
				}
			}
			seq := binary.BigEndian.Uint64(k)
			res.LastSeq = seq
			bad := func(kind, format string, args ...any) {
				report(Problem{Seq: seq, Kind: kind, Message: fmt.Sprintf(format, args...)})
				good = false
			}
			expect = seq + 1
			if exitSeq != 0 {
				bad(ProblemAfterExit, "record after the exit record at seq %d", exitSeq)
			}
			data, err := l.check(seq, v)
			if err != nil {
				bad(ProblemChecksum, "%v", err.(*CorruptError).Err)
				continue
			}
			// The header only: verification does not pay for decoding
			// the payload.
			h, err := wire.ParseHeader(data)
			if err != nil {
				bad(ProblemDecode, "%v", err)
				continue
			}
			if h.Seq != seq {
				bad(ProblemSeq, "record says seq %d under key %d", h.Seq, seq)
			}
			if len(h.ID) != 16 {
				bad(ProblemULID, "id of %d bytes, want a 16-byte ULID", len(h.ID))
			} else {
				if prevID != nil && bytes.Compare(h.ID, prevID) <= 0 {
					bad(ProblemULID, "ULID does not increase")
				}
				prevID = append(prevID[:0], h.ID...)
			}
			if prevTime != 0 && h.Time < prevTime-int64(tol) {
				bad(ProblemTime, "time %s is %s before the previous record",
					time.Unix(0, h.Time).UTC().Format(time.RFC3339Nano), time.Duration(prevTime-h.Time))
			}
			if h.Time > prevTime {
				prevTime = h.Time
			}
			if h.Kind == wire.KindExit {
				if exitSeq != 0 {
					bad(ProblemExit, "second exit record (first at seq %d)", exitSeq)
				} else {
					exitSeq = seq
				}
			}
			if good {
				res.LastGood = seq
			}
		}
		if cb := tx.Bucket(bucketCursors); cb != nil {
			cb.ForEach(func(k, v []byte) error {
				if len(v) != 8 {
					report(Problem{Kind: ProblemCursor, Message: fmt.Sprintf("cursor %q: value of %d bytes", k, len(v))})
				} else if s := binary.BigEndian.Uint64(v); s > res.LastSeq {
					report(Problem{Kind: ProblemCursor, Message: fmt.Sprintf("cursor %q at seq %d is past the last record %d", k, s, res.LastSeq)})
				}
				return nil
			})
		}
		return nil
	})
	if errors.Is(err, errFault) {
		report(Problem{Seq: expectAt(res), Kind: ProblemBolt, Message: err.Error()})
		err = nil
	}
	if err != nil {
		return res, fmt.Errorf("verify wal %s: %w", l.path, err)
	}
	return res, nil
}

// expectAt is the seq after the last one Verify saw.
func expectAt(res VerifyResult) uint64 { return res.LastSeq + 1 }

package mux

import (
	"bytes"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/runlog/runlog/wal"
	"github.com/runlog/runlog/wire"
)

// A record whose client_seq is not above its client's high-water is either
// a resend (the client did not see the answer that covered it) or a
// mistake: numbers going backwards, one number used twice, or two processes
// publishing under one client id. The writer tells them apart by looking for
// the record the client_seq already names, among the records of the commit
// it is building and then in the log, read back from its end: the client's
// records are in the log in client_seq order, so the search stops at the
// first of them below the one it looks for.

// Limits of the client_seq contract.
const (
	// maxClientSeqSkip is how far past its client's high-water a client_seq
	// may be. Clients number records 1, 2, 3, ... without gaps; a record
	// refused with an unreadable client_seq leaves one. A larger jump is a
	// bug, and writing it would leave every later record of the client
	// below the high-water.
	maxClientSeqSkip = 1 << 20
	// maxResendScan bounds how many records one commit reads back from the
	// end of the log to find the records that resends repeat.
	maxResendScan = 1 << 16
	// resendWindow is how many records one read transaction of the search
	// visits.
	resendWindow = 1024
)

// resendIndex is what the writer learnt about one client's durable records
// while reading the log back for the current commit.
type resendIndex struct {
	next    uint64            // the next seq to read going back; 0 when the start was reached
	scanned int               // records read
	lowest  uint64            // lowest client_seq of the client's records read; 0 when none
	seqs    map[uint64]uint64 // client_seq -> seq of the client's records read
}

var errWindowDone = errors.New("window done")

// priorRecord returns the body of the record of client numbered cs that the
// commit being built (encs) or the log already holds, and its seq in the
// log (0 when it is in encs). found is false when there is none, or none
// among the last maxResendScan records (far is then true).
func (r *run) priorRecord(encs []wal.Encoded, client string, cs uint64) (body []byte, seq uint64, found, far bool, err error) {
	for k := len(encs) - 1; k >= 0; k-- {
		if e := &encs[k]; e.ClientID == client {
			if e.ClientSeq == cs {
				return e.Body, 0, true, false, nil
			}
			if e.ClientSeq < cs {
				return nil, 0, false, false, nil
			}
		}
	}
	if r.resends == nil {
		r.resends = make(map[string]*resendIndex)
	}
	ix := r.resends[client]
	if ix == nil {
		ix = &resendIndex{next: r.log.LastSeq(), seqs: make(map[uint64]uint64)}
		r.resends[client] = ix
	}
	for {
		if s, ok := ix.seqs[cs]; ok {
			body, err := r.storedBody(s)
			return body, s, err == nil, false, err
		}
		if ix.lowest != 0 && ix.lowest < cs || ix.next == 0 {
			return nil, 0, false, false, nil
		}
		if ix.scanned >= maxResendScan {
			return nil, 0, false, true, nil
		}
		if err := r.readBack(ix, client); err != nil {
			return nil, 0, false, false, err
		}
	}
}

// readBack reads the resendWindow records before ix.next into ix.
func (r *run) readBack(ix *resendIndex, client string) error {
	from := uint64(1)
	if ix.next > resendWindow {
		from = ix.next - resendWindow + 1
	}
	to := ix.next
	err := r.log.Scan(from, func(seq uint64, data []byte) error {
		if seq > to {
			return errWindowDone
		}
		id, cs := clientOf(data)
		if cs != 0 && string(id) == client {
			ix.seqs[cs] = seq
			if ix.lowest == 0 || cs < ix.lowest {
				ix.lowest = cs
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errWindowDone) {
		return fmt.Errorf("look for resent records of run %s: %w", r.id, err)
	}
	ix.scanned += int(to - from + 1)
	ix.next = from - 1
	return nil
}

// storedBody returns the body (the record without its header fields) of the
// log's record seq.
func (r *run) storedBody(seq uint64) ([]byte, error) {
	var body []byte
	err := r.log.Scan(seq, func(s uint64, data []byte) error {
		if s == seq {
			body = stripHeader(data)
		}
		return errWindowDone
	})
	if err != nil && !errors.Is(err, errWindowDone) {
		return nil, fmt.Errorf("read record %d of run %s: %w", seq, r.id, err)
	}
	if body == nil {
		return nil, fmt.Errorf("read record %d of run %s: not in the log", seq, r.id)
	}
	return body, nil
}

// clientOf reads client_id and client_seq from a stored record, whose header
// fields come first: the read stops at the first other field.
func clientOf(data []byte) (id []byte, cs uint64) {
	for s := wire.NewScanner(data); s.Next() && wire.IsHeader(s.Num()); {
		switch {
		case s.Is(wire.RecordClientID, protowire.BytesType):
			id = s.Bytes()
		case s.Is(wire.RecordClientSeq, protowire.VarintType):
			cs = s.Uint()
		}
	}
	return id, cs
}

// checkResend decides about record e of client, whose client_seq is not
// above the client's high-water hw: nil when it repeats the record that
// client_seq already names (an identical resend: acknowledged, not written
// again), otherwise the reason to refuse it.
func (r *run) checkResend(encs []wal.Encoded, client string, e *entry, hw uint64) error {
	body, seq, found, far, err := r.priorRecord(encs, client, e.clientSeq)
	switch {
	case err != nil:
		return err
	case found && bytes.Equal(body, e.body):
		return nil
	case found:
		where := "an earlier record of this batch"
		if seq != 0 {
			where = fmt.Sprintf("the record at seq %d", seq)
		}
		return errorf(ErrClientSeqReused,
			"client_seq %d of client %s already holds a different record (%s); another process may be publishing with this client id (a forked child?): give each process its own client id",
			e.clientSeq, client, where)
	case far:
		return errorf(ErrClientSeqOrder,
			"client_seq %d is not above client %s's high-water %d and is no resend of its last %d records; number each client's records 1, 2, 3, ... in publish order",
			e.clientSeq, client, hw, maxResendScan)
	default:
		return errorf(ErrClientSeqOrder,
			"client_seq %d is not above client %s's high-water %d and names no record in the log (it went backwards, or repeats a refused record); number each client's records 1, 2, 3, ... in publish order",
			e.clientSeq, client, hw)
	}
}

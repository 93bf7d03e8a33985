package wal

import (
	"errors"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/runlog/runlog/wire"
)

// Encoded is a record whose payload is already encoded, for AppendEncoded.
type Encoded struct {
	ClientID  string
	ClientSeq uint64
	// Body is the protobuf encoding of the record's fields other than seq,
	// id, time_unix_nano, client_id and client_seq (field numbers 1 to 5):
	// exactly one payload field and, for records a service writes itself,
	// synthesized. The caller guarantees that the payload is a valid
	// encoding; the log checks the top level only.
	Body []byte
}

// AppendEncoded is Append for records that arrive encoded, as they do over
// the wire: it writes seq, id, time, client_id and client_seq followed by
// Body, which is what proto.Marshal produces for the whole record, without
// decoding and re-encoding the payload. It returns the sequence of the first
// record. The same invariants hold as for Append: one transaction, durable on
// return, nothing of the batch in the log on error.
func (l *Log) AppendEncoded(recs []Encoded) (first uint64, err error) {
	first, _, err = l.appendEncoded(recs, nil, false)
	return first, err
}

// appendEncoded is AppendEncoded that also returns the time stamped on the
// batch and, when ids is not nil, each record's ULID in ids. typed says the
// bodies were encoded from typed records by Append: a typed record may carry
// no payload, bytes from the wire must carry one.
func (l *Log) appendEncoded(recs []Encoded, ids []ulid.ULID, typed bool) (first uint64, now int64, err error) {
	if len(recs) == 0 {
		return 0, 0, nil
	}
	if l.ro {
		return 0, 0, fmt.Errorf("append wal %s: read-only", l.path)
	}
	if ce := l.refused.Load(); ce != nil {
		return 0, 0, fmt.Errorf("append wal %s: the log is damaged at seq %d and takes no more records: %w", l.path, ce.Seq, ce)
	}
	l.appendMu.Lock()
	defer l.appendMu.Unlock()

	end, err := l.end()
	if err != nil {
		return 0, 0, err
	}
	seq, id, last, step := end.seq, end.id, end.time, end.step
	first = seq + 1

	now = l.now().UnixNano()
	if now < last {
		now = last
	}
	ms := uint64(now / int64(time.Millisecond))
	clients := make(map[string]uint64, 1)
	finished := false
	// One allocation of the right size: growing by doubling would leave
	// up to half of a batch's buffer unused for every run that writes.
	need := 0
	for i := range recs {
		need += maxHeader + len(recs[i].ClientID) + len(recs[i].Body)
	}
	buf := l.buf[:0]
	if cap(buf) < need {
		buf = make([]byte, 0, need)
	}
	offs := make([]int, len(recs)+1)
	for i := range recs {
		r := &recs[i]
		if finished {
			return 0, 0, fmt.Errorf("append wal %s: record %d follows the exit record: %w", l.path, i, ErrBadBatch)
		}
		p, err := scanBody(r.Body)
		if err == nil && p.kind == wire.KindNone && !typed {
			err = errNoPayload
		}
		if err != nil {
			return 0, 0, fmt.Errorf("append wal %s: record %d: %v: %w", l.path, i, err, ErrBadBatch)
		}
		switch p.kind {
		case wire.KindHistory, wire.KindRewind:
			step = p.step
		case wire.KindExit:
			finished = true
		}
		seq++
		id = l.nextID(id, ms)
		if ids != nil {
			ids[i] = id
		}
		if r.ClientID != "" && r.ClientSeq > clients[r.ClientID] {
			clients[r.ClientID] = r.ClientSeq
		}

		offs[i] = len(buf)
		buf = wire.BeginFrame(buf)
		buf = wire.AppendHeader(buf, seq, id[:], now, r.ClientID, r.ClientSeq)
		buf = append(buf, r.Body...)
		wire.SealFrame(buf[offs[i]:])
	}
	offs[len(recs)] = len(buf)
	if err := l.write(first, buf, offs, clients, logEnd{seq, id, now, step, finished}); err != nil {
		return 0, 0, err
	}
	return first, now, nil
}

// maxHeader bounds what appendEncoded writes around a record's body and
// client id: the checksum and the tags and varints of seq, id, time, the
// client id's length and client_seq.
const maxHeader = 4 + (1 + 10) + (1 + 1 + 16) + (1 + 10) + (1 + 10) + (1 + 10)

// keepBuf is the largest encoding buffer a log keeps between batches.
const keepBuf = 64 << 10

// bodyPayload is what the log needs to know about an encoded payload.
type bodyPayload struct {
	kind wire.Kind // KindNone when the body has no payload
	step int64     // the history row's or rewind's step
}

// scanBody checks the top level of an encoded record body: no field the log
// stamps or takes from Encoded (seq to client_seq), at most one payload
// field, of the message wire type. For history rows and rewinds it reads
// the step.
func scanBody(b []byte) (bodyPayload, error) {
	var p bodyPayload
	s := wire.NewScanner(b)
	for s.Next() {
		num := s.Num()
		if num >= wire.RecordSeq && num <= wire.RecordClientSeq {
			return p, fmt.Errorf("body holds header field %d", num)
		}
		k := wire.KindOfField(num)
		if k == wire.KindNone {
			continue
		}
		if p.kind != wire.KindNone {
			return p, fmt.Errorf("body holds payload fields %d and %d", p.kind.Field(), num)
		}
		if s.Type() != protowire.BytesType {
			return p, fmt.Errorf("payload field %d has wire type %d", num, s.Type())
		}
		p.kind = k
		if k == wire.KindHistory || k == wire.KindRewind {
			step, err := wire.Step(s.Bytes())
			if err != nil {
				return p, fmt.Errorf("payload field %d: %w", num, err)
			}
			p.step = step
		}
	}
	return p, s.Err()
}

var errNoPayload = errors.New("body holds no payload")

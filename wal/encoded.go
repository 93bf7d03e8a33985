package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/oklog/ulid/v2"
	"google.golang.org/protobuf/encoding/protowire"
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

// Field numbers of runlog.v1.Record that AppendEncoded writes or reads.
// The payload range (fieldPayloadFirst..fieldPayloadLast) is declared
// beside scanHeader.
const (
	fieldClientID  = 4
	fieldClientSeq = 5
	fieldHistory   = 12
	fieldRewind    = 19
)

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
	buf := l.buf[:0]
	offs := make([]int, len(recs)+1)
	for i := range recs {
		r := &recs[i]
		if finished {
			return 0, 0, fmt.Errorf("append wal %s: record %d follows the exit record: %w", l.path, i, ErrBadBatch)
		}
		p, err := scanBody(r.Body)
		if err == nil && p.field == 0 && !typed {
			err = errNoPayload
		}
		if err != nil {
			return 0, 0, fmt.Errorf("append wal %s: record %d: %v: %w", l.path, i, err, ErrBadBatch)
		}
		switch p.field {
		case fieldHistory, fieldRewind:
			step = p.step
		case fieldExit:
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
		buf = append(buf, 0, 0, 0, 0)
		buf = protowire.AppendTag(buf, fieldSeq, protowire.VarintType)
		buf = protowire.AppendVarint(buf, seq)
		buf = protowire.AppendTag(buf, fieldID, protowire.BytesType)
		buf = protowire.AppendBytes(buf, id[:])
		buf = protowire.AppendTag(buf, fieldTime, protowire.VarintType)
		buf = protowire.AppendVarint(buf, uint64(now))
		if r.ClientID != "" {
			buf = protowire.AppendTag(buf, fieldClientID, protowire.BytesType)
			buf = protowire.AppendString(buf, r.ClientID)
		}
		if r.ClientSeq != 0 {
			buf = protowire.AppendTag(buf, fieldClientSeq, protowire.VarintType)
			buf = protowire.AppendVarint(buf, r.ClientSeq)
		}
		buf = append(buf, r.Body...)
		binary.BigEndian.PutUint32(buf[offs[i]:], crc32.Checksum(buf[offs[i]+4:], castagnoli))
	}
	offs[len(recs)] = len(buf)
	if err := l.write(first, buf, offs, clients, logEnd{seq, id, now, step, finished}); err != nil {
		return 0, 0, err
	}
	return first, now, nil
}

// bodyPayload is what the log needs to know about an encoded payload.
type bodyPayload struct {
	field protowire.Number // the payload's field number
	step  int64            // the history row's or rewind's step
}

// scanBody checks the top level of an encoded record body: no header fields,
// at most one payload field (field is 0 when there is none). For history rows and rewinds it reads the step.
func scanBody(b []byte) (bodyPayload, error) {
	var p bodyPayload
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return p, fmt.Errorf("bad tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if num >= fieldSeq && num <= fieldClientSeq {
			return p, fmt.Errorf("body holds header field %d", num)
		}
		if num >= fieldPayloadFirst && num <= fieldPayloadLast {
			if p.field != 0 {
				return p, fmt.Errorf("body holds payload fields %d and %d", p.field, num)
			}
			if typ != protowire.BytesType {
				return p, fmt.Errorf("payload field %d has wire type %d", num, typ)
			}
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return p, fmt.Errorf("payload field %d: %w", num, protowire.ParseError(m))
			}
			p.field = num
			if num == fieldHistory || num == fieldRewind {
				s, err := scanStep(v)
				if err != nil {
					return p, fmt.Errorf("payload field %d: %w", num, err)
				}
				p.step = s
			}
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return p, fmt.Errorf("field %d: %w", num, protowire.ParseError(m))
		}
		b = b[m:]
	}
	return p, nil
}

var errNoPayload = errors.New("body holds no payload")

// scanStep reads field 1 (step, an int64) of a HistoryRow or Rewind; the
// last occurrence wins, as in a decoder.
func scanStep(b []byte) (int64, error) {
	var step int64
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, fmt.Errorf("bad tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if num == 1 && typ == protowire.VarintType {
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return 0, fmt.Errorf("bad step: %w", protowire.ParseError(m))
			}
			step = int64(v)
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return 0, fmt.Errorf("field %d: %w", num, protowire.ParseError(m))
		}
		b = b[m:]
	}
	return step, nil
}

package replay

import (
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// Event is an encoded record decoded only as far as folding it into a State
// needs. History rows and system stats are most of a run and the state keeps
// nothing of their items, so DecodeEvent reads their header and step and
// only checks that the items decode; every other record is decoded in full.
//
// Decoding and applying are separate so that a caller can decode in parallel
// and apply in order: the hub's store decodes each append in the caller's
// goroutine and folds in its single writer. An Event shares nothing with the
// bytes it was decoded from. The zero Event is a record without a payload at
// seq 0.
type Event struct {
	seq  uint64
	time int64
	kind Kind
	step int64            // a history row's step
	rec  *runlogv1.Record // the full decoding; nil for the fast kinds
}

// Seq returns the record's seq.
func (e *Event) Seq() uint64 { return e.seq }

// Kind returns the kind of the record's payload.
func (e *Event) Kind() Kind { return e.kind }

// Time returns the record's time in unix nanoseconds.
func (e *Event) Time() int64 { return e.time }

// Step returns a history row's step (and, for a decoded rewind, zero).
func (e *Event) Step() int64 {
	if e.rec != nil {
		return e.rec.GetHistory().GetStep()
	}
	return e.step
}

// DecodeEvent decodes an encoded runlog.v1.Record for ApplyEvent. It fails
// exactly when proto.Unmarshal fails, and applying the event gives the state
// that applying the decoded record gives.
func DecodeEvent(data []byte) (Event, error) {
	if e, ok := fastEvent(data); ok {
		return e, nil
	}
	r := new(runlogv1.Record)
	if err := proto.Unmarshal(data, r); err != nil {
		return Event{}, err
	}
	return Event{seq: r.GetSeq(), time: r.GetTimeUnixNano(), kind: KindOf(r), rec: r}, nil
}

// ApplyEvent folds a decoded record into the state, as Apply folds the record
// itself. The state keeps no reference to e.
func (s *State) ApplyEvent(e *Event) {
	if e.rec != nil {
		s.Apply(e.rec)
		return
	}
	s.applyHeader(e.seq, e.time, e.kind)
	if e.kind == KindHistory {
		s.applyStep(e.step)
	}
}

// ApplyEncoded folds an encoded record into the state: DecodeEvent, then
// ApplyEvent. On error the state is unchanged.
func (s *State) ApplyEncoded(data []byte) error {
	if e, ok := fastEvent(data); ok {
		s.ApplyEvent(&e)
		return nil
	}
	var r runlogv1.Record
	if err := proto.Unmarshal(data, &r); err != nil {
		return err
	}
	s.Apply(&r)
	return nil
}

// fastEvent decodes a history row or a stats record as encoders write them,
// allocating nothing. ok is false for anything else, and for anything the
// full decoder might refuse: only that decoder may decide that a record is
// invalid.
func fastEvent(data []byte) (Event, bool) {
	h, err := parseWire(data)
	if err != nil || h.payloads != 1 {
		return Event{}, false
	}
	e := Event{seq: h.seq, time: h.time, kind: h.kind}
	switch h.kind {
	case KindHistory:
		step, items, ok := splitRowWire(h.payload)
		if !ok || !itemsWire(items, 2) {
			return Event{}, false
		}
		e.step = step
	case KindStats:
		if !itemsWire(h.payload, 1) {
			return Event{}, false
		}
	default:
		return Event{}, false
	}
	return e, true
}

// splitRowWire splits an encoded HistoryRow whose step comes before its
// items, as every encoder writes it, into the step and the encoded items
// (the rest of p from the first item on). ok is false for any other layout.
func splitRowWire(p []byte) (step int64, items []byte, ok bool) {
	for len(p) > 0 {
		num, typ, n := consumeTag(p)
		if n < 0 {
			return 0, nil, false
		}
		if num == 2 && typ == protowire.BytesType {
			break
		}
		if num != 1 || typ != protowire.VarintType {
			return 0, nil, false
		}
		v, m := protowire.ConsumeVarint(p[n:])
		if m < 0 {
			return 0, nil, false
		}
		step = int64(v)
		p = p[n+m:]
	}
	return step, p, true
}

// itemsWire reports whether p is a run of fields field holding encoded Items
// that the fast paths take (and so the decoder accepts), without building
// them.
func itemsWire(p []byte, field protowire.Number) bool {
	tag := byte(field)<<3 | byte(protowire.BytesType)
	for len(p) > 0 {
		var it []byte
		if len(p) >= 2 && p[0] == tag && p[1] < 0x80 && int(p[1]) <= len(p)-2 {
			// A one-byte length: the items of an ordinary row.
			it, p = p[2:2+p[1]], p[2+p[1]:]
		} else {
			num, typ, n := consumeTag(p)
			if n < 0 || num != field || typ != protowire.BytesType {
				return false
			}
			var m int
			if it, m = protowire.ConsumeBytes(p[n:]); m < 0 {
				return false
			}
			p = p[n+m:]
		}
		if doubleItemWire(it) {
			continue
		}
		_, val, ok := splitItemWire(it)
		if !ok {
			return false
		}
		if _, ok := parseValueWire(val); !ok {
			return false
		}
	}
	return true
}

// doubleItemWire reports whether it is an encoded Item with an ASCII key
// and a double value, as encoders write a metric: key, then value, with
// one-byte lengths. Checking that byte by byte makes checking an ordinary
// row about three times faster than the general splitItemWire and
// parseValueWire, which take every other item.
func doubleItemWire(it []byte) bool {
	if len(it) < 2 || it[0] != 1<<3|byte(protowire.BytesType) || it[1] >= 0x80 {
		return false
	}
	k := 2 + int(it[1])
	if len(it) != k+11 {
		return false
	}
	for _, c := range it[2:k] {
		if c >= 0x80 {
			return false
		}
	}
	v := it[k:]
	return v[0] == 2<<3|byte(protowire.BytesType) && v[1] == 9 && v[2] == 1<<3|byte(protowire.Fixed64Type)
}

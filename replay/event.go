package replay

import (
	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wire"
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
	seq   uint64
	time  int64
	kind  Kind
	step  int64            // a history row's step
	stats []byte           // a stats record's encoded SystemStats
	rec   *runlogv1.Record // the full decoding; nil for the fast kinds
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
		if e.kind == KindStats {
			e.stats = append([]byte(nil), e.stats...) // share nothing with data
		}
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
	switch e.kind {
	case KindHistory:
		s.applyStep(e.step)
	case KindStats:
		s.applyStats(e.seq, e.time, e.stats)
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
// allocating nothing; a stats event's payload aliases data. ok is false for anything else, and for anything the
// full decoder might refuse: only that decoder may decide that a record is
// invalid.
func fastEvent(data []byte) (Event, bool) {
	h, err := wire.ParseHeader(data)
	if err != nil || h.Payloads != 1 || h.CheckClientID() != nil {
		return Event{}, false
	}
	e := Event{seq: h.Seq, time: h.Time, kind: h.Kind}
	switch h.Kind {
	case KindHistory:
		step, items, ok := wire.SplitRow(h.Payload)
		if !ok || !wire.ItemsOK(items, wire.HistoryItems) {
			return Event{}, false
		}
		e.step = step
	case KindStats:
		if !wire.ItemsOK(h.Payload, wire.StatsItems) {
			return Event{}, false
		}
		e.stats = h.Payload
	default:
		return Event{}, false
	}
	return e, true
}

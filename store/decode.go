package store

import (
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// Field numbers of runlog.v1.Record and its payloads read by foldRecord.
const (
	fieldSeq     = 1
	fieldTime    = 3
	fieldHistory = 12
	fieldStats   = 16
	fieldStep    = 1 // HistoryRow.step
)

// foldRecord decodes an encoded Record for replay.State.Apply. History rows
// and system stats are most of a run and Apply reads only a row's step and a
// sample's kind, so for those it decodes the header, the step and nothing
// else, checking that the rest is well-formed protobuf; every other record is
// decoded in full. TestFoldRecordMatchesFullDecode holds the fold of the
// result equal to the fold of a full decode.
func foldRecord(b []byte) (*runlogv1.Record, error) {
	r := new(runlogv1.Record)
	var payload []byte
	var payloadField protowire.Number
	for rest := b; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		rest = rest[n:]
		switch {
		case num == fieldSeq && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(rest)
			if m < 0 {
				return nil, protowire.ParseError(m)
			}
			r.Seq, n = v, m
		case num == fieldTime && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(rest)
			if m < 0 {
				return nil, protowire.ParseError(m)
			}
			r.TimeUnixNano, n = int64(v), m
		case num >= 10 && num <= 20:
			if typ != protowire.BytesType || payload != nil {
				// Not what an encoder writes: a repeated payload field
				// merges, so leave it to the full decoder.
				return fullDecode(b)
			}
			v, m := protowire.ConsumeBytes(rest)
			if m < 0 {
				return nil, protowire.ParseError(m)
			}
			payload, payloadField, n = v, num, m
		default:
			n = protowire.ConsumeFieldValue(num, typ, rest)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
		}
		rest = rest[n:]
	}
	switch payloadField {
	case fieldHistory:
		step, err := historyStep(payload)
		if err != nil {
			return nil, err
		}
		r.Payload = &runlogv1.Record_History{History: &runlogv1.HistoryRow{Step: step}}
		return r, nil
	case fieldStats:
		if err := wellFormed(payload); err != nil {
			return nil, err
		}
		r.Payload = &runlogv1.Record_Stats{Stats: &runlogv1.SystemStats{}}
		return r, nil
	}
	return fullDecode(b)
}

func fullDecode(b []byte) (*runlogv1.Record, error) {
	r := new(runlogv1.Record)
	if err := proto.Unmarshal(b, r); err != nil {
		return nil, err
	}
	return r, nil
}

// historyStep reads a HistoryRow's step and checks the rest is well-formed.
func historyStep(b []byte) (int64, error) {
	var step int64
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		b = b[n:]
		if num == fieldStep && typ == protowire.VarintType {
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return 0, protowire.ParseError(m)
			}
			step, b = int64(v), b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return 0, protowire.ParseError(m)
		}
		b = b[m:]
	}
	return step, nil
}

// wellFormed checks that b is a sequence of well-formed fields.
func wellFormed(b []byte) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return protowire.ParseError(m)
		}
		b = b[m:]
	}
	return nil
}

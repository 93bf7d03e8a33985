package replay

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wal"
	"github.com/runlog/runlog/wire"
)

// Reading encoded records without decoding them: exports of long runs spend
// most of their time in the protobuf decoder otherwise (it allocates every
// item, value and key of every history row). The fast paths below cover the
// records a long run is made of (history rows, stats, config and summary
// updates) and hand anything unusual to the full decoder, so their output is
// the same byte for byte; FuzzJSONEncoded checks that.

// AppendJSONEncoded appends the encoded record data as AppendJSON would
// append its decoding, without decoding it when it can. It fails when data
// is not a valid record.
func AppendJSONEncoded(b []byte, data []byte) ([]byte, error) {
	h, err := wire.ParseHeader(data)
	if err == nil && h.Payloads <= 1 && h.CheckClientID() == nil {
		if out, ok := appendJSONWire(b, &h); ok {
			return out, nil
		}
	}
	var r runlogv1.Record
	if err := proto.Unmarshal(data, &r); err != nil {
		return b, err
	}
	return AppendJSON(b, &r), nil
}

func appendJSONWire(b []byte, h *wire.Header) ([]byte, bool) {
	start := len(b)
	b = appendHeader(b, h.Seq, h.ID, h.Time, h.ClientID, h.ClientSeq, h.Synthesized, h.Kind)
	if h.Kind == KindNone {
		return append(b, '}'), true
	}
	var ok bool
	p := h.Payload
	switch h.Kind {
	case KindHistory:
		b, ok = appendHistoryWire(b, p)
	case KindStats:
		b, ok = appendItemsOnlyWire(b, p)
	case KindConfig, KindSummary:
		b, ok = appendUpdateWire(b, p)
	}
	if !ok {
		return b[:start], false
	}
	return append(b, '}'), true
}

// appendHeader writes the header members and the kind, leaving the object
// open for the payload member.
func appendHeader(b []byte, seq uint64, id []byte, ns int64, clientID []byte, clientSeq uint64, synth bool, k Kind) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = appendID(b, id)
	b = append(b, `,"time":`...)
	b = appendTime(b, ns)
	b = append(b, `,"client_id":`...)
	b = appendStringBytes(b, clientID)
	b = append(b, `,"client_seq":`...)
	b = strconv.AppendUint(b, clientSeq, 10)
	b = append(b, `,"synthesized":`...)
	b = strconv.AppendBool(b, synth)
	b = append(b, `,"kind":"`...)
	b = append(b, k.String()...)
	b = append(b, '"')
	if k != KindNone {
		b = append(b, `,"`...)
		b = append(b, k.String()...)
		b = append(b, `":`...)
	}
	return b
}

// appendHistoryWire writes {"step":N,"items":[...]} from an encoded
// HistoryRow whose step comes before its items, as every encoder writes it.
func appendHistoryWire(b []byte, p []byte) ([]byte, bool) {
	step, items, ok := wire.SplitRow(p)
	if !ok {
		return b, false
	}
	b = append(b, `{"step":`...)
	b = strconv.AppendInt(b, step, 10)
	if len(items) > 0 {
		b = append(b, `,"items":`...)
		if b, ok = appendItemListWire(b, items, wire.HistoryItems); !ok {
			return b, false
		}
	}
	return append(b, '}'), true
}

// appendItemsOnlyWire writes {"items":[...]} from an encoded SystemStats.
func appendItemsOnlyWire(b []byte, p []byte) ([]byte, bool) {
	b = append(b, '{')
	if len(p) > 0 {
		var ok bool
		b = append(b, `"items":`...)
		if b, ok = appendItemListWire(b, p, wire.StatsItems); !ok {
			return b, false
		}
	}
	return append(b, '}'), true
}

// appendUpdateWire writes {"set":[...],"remove":[...]} from an encoded
// ConfigUpdate or SummaryUpdate whose set items all come before its removes.
func appendUpdateWire(b []byte, p []byte) ([]byte, bool) {
	set, remove, ok := wire.SplitUpdate(p)
	if !ok {
		return b, false
	}
	b = append(b, '{')
	if len(set) > 0 {
		b = append(b, `"set":`...)
		if b, ok = appendItemListWire(b, set, wire.UpdateSet); !ok {
			return b, false
		}
	}
	if len(remove) > 0 {
		if len(set) > 0 {
			b = append(b, ',')
		}
		b = append(b, `"remove":[`...)
		s := wire.NewScanner(remove)
		for i := 0; s.Next(); i++ {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendStringBytes(b, s.Bytes())
		}
		b = append(b, ']')
	}
	return append(b, '}'), true
}

// appendItemListWire writes the JSON array of a run of fields field holding
// encoded Items, which must make up all of p.
func appendItemListWire(b []byte, p []byte, field protowire.Number) ([]byte, bool) {
	b = append(b, '[')
	s := wire.NewScanner(p)
	for i := 0; s.Next(); i++ {
		if !s.Is(field, protowire.BytesType) {
			return b, false
		}
		if i > 0 {
			b = append(b, ',')
		}
		var ok bool
		if b, ok = appendItemWire(b, s.Bytes()); !ok {
			return b, false
		}
	}
	if s.Err() != nil {
		return b, false
	}
	return append(b, ']'), true
}

// appendItemWire writes one encoded Item.
func appendItemWire(b []byte, p []byte) ([]byte, bool) {
	key, val, ok := wire.SplitItem(p)
	if !ok {
		return b, false
	}
	v, ok := wire.ParseValue(val)
	if !ok {
		return b, false
	}
	b = append(b, `{"key":`...)
	b = appendStringBytes(b, key)
	switch v.Field {
	case wire.ValueDouble:
		b = append(b, `,"double":`...)
		b = appendDouble(b, math.Float64frombits(v.X))
	case wire.ValueInt:
		b = append(b, `,"int":`...)
		b = strconv.AppendInt(b, int64(v.X), 10)
	case wire.ValueBool:
		b = append(b, `,"bool":`...)
		b = strconv.AppendBool(b, v.X != 0)
	case wire.ValueString:
		b = append(b, `,"string":`...)
		b = appendStringBytes(b, v.B)
	case wire.ValueJSON:
		b = appendJSONValue(b, v.B)
	}
	return append(b, '}'), true
}

// valueOf builds the decoded Value; bytes are copied.
func valueOf(v wire.Value) *runlogv1.Value {
	switch v.Field {
	case wire.ValueDouble:
		return &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: math.Float64frombits(v.X)}}
	case wire.ValueInt:
		return &runlogv1.Value{Kind: &runlogv1.Value_IntValue{IntValue: int64(v.X)}}
	case wire.ValueBool:
		return &runlogv1.Value{Kind: &runlogv1.Value_BoolValue{BoolValue: v.X != 0}}
	case wire.ValueString:
		return &runlogv1.Value{Kind: &runlogv1.Value_StringValue{StringValue: string(v.B)}}
	case wire.ValueJSON:
		return &runlogv1.Value{Kind: &runlogv1.Value_JsonValue{JsonValue: append([]byte{}, v.B...)}}
	}
	return &runlogv1.Value{}
}

// decodeRowWire decodes the items of an encoded HistoryRow as
// proto.Unmarshal would, keeping only those whose key want holds (every item
// when want is nil) and allocating nothing for the others. ok is false for
// anything the fast path does not take; the caller then decodes in full.
//
// The kept items, their values and keys share a few allocations per row
// instead of four per item: a row of ten metrics is the common case.
func decodeRowWire(p []byte, want map[string]bool) (items []*runlogv1.Item, ok bool) {
	_, p, ok = wire.SplitRow(p)
	if !ok {
		return nil, false
	}
	type kept struct {
		key []byte
		val []byte // nil: no value
		v   wire.Value
	}
	var (
		buf     [16]kept
		ks      = buf[:0]
		keyLen  int
		doubles int
	)
	s := wire.NewScanner(p)
	for s.Next() {
		if !s.Is(wire.HistoryItems, protowire.BytesType) {
			return nil, false
		}
		key, val, ok := wire.SplitItem(s.Bytes())
		if !ok {
			return nil, false
		}
		v, ok := wire.ParseValue(val)
		if !ok {
			return nil, false
		}
		if want != nil && !want[string(key)] {
			continue
		}
		ks = append(ks, kept{key: key, val: val, v: v})
		keyLen += len(key)
		if v.Field == wire.ValueDouble {
			doubles++
		}
	}
	if s.Err() != nil {
		return nil, false
	}
	if len(ks) == 0 {
		return nil, true
	}
	var (
		keyBuf = make([]byte, 0, keyLen)
		ptrs   = make([]*runlogv1.Item, len(ks))
		itemsA = make([]runlogv1.Item, len(ks))
		valsA  = make([]runlogv1.Value, len(ks))
		dblA   = make([]runlogv1.Value_DoubleValue, doubles)
	)
	for _, k := range ks {
		keyBuf = append(keyBuf, k.key...)
	}
	keys := string(keyBuf)
	off := 0
	for i, k := range ks {
		it := &itemsA[i]
		it.Key = keys[off : off+len(k.key)]
		off += len(k.key)
		if k.val != nil {
			v := &valsA[i]
			if k.v.Field == wire.ValueDouble {
				d := &dblA[0]
				dblA = dblA[1:]
				d.DoubleValue = math.Float64frombits(k.v.X)
				v.Kind = d
			} else if k.v.Field != 0 {
				v.Kind = valueOf(k.v).Kind
			}
			it.Value = v
		}
		ptrs[i] = it
	}
	return ptrs, true
}

// appendStringBytes is appendString for bytes known to be valid UTF-8.
func appendStringBytes(b []byte, s []byte) []byte {
	for _, c := range s {
		if c < 0x20 || c == '"' || c == '\\' {
			return appendString(b, string(s))
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// headerMatch reports whether an encoded record's header passes the filter.
func (f *Filter) headerMatch(h *wire.Header) bool {
	if f.From != 0 && h.Seq < f.From || f.To != 0 && h.Seq > f.To {
		return false
	}
	if !f.Since.IsZero() && h.Time < f.Since.UnixNano() {
		return false
	}
	if !f.Until.IsZero() && h.Time > f.Until.UnixNano() {
		return false
	}
	if f.Client != "" && string(h.ClientID) != f.Client {
		return false
	}
	return f.matchKind(h.Kind)
}

// EncodedRecords calls fn with the seq and encoded bytes of each record of
// src that passes f, in log order, judging the filter from the record's top
// level without decoding its payload. data is valid only during the call. A
// record whose top level does not parse stops the read with a
// *wal.CorruptError.
func EncodedRecords(src Source, f Filter, fn func(seq uint64, data []byte) error) error {
	err := src.Scan(f.From, func(seq uint64, data []byte) error {
		if f.To != 0 && seq > f.To {
			return errStop
		}
		h, err := wire.ParseHeader(data)
		if err == nil {
			// A client_id the decoder refuses makes the record corrupt,
			// as a full read finds it.
			err = h.CheckClientID()
		}
		if err != nil {
			return &wal.CorruptError{Path: pathOf(src), Seq: seq, Err: err}
		}
		if !f.headerMatch(&h) {
			return nil
		}
		return fn(seq, data)
	})
	if err != nil && !errors.Is(err, errStop) {
		return fmt.Errorf("read records: %w", err)
	}
	return nil
}

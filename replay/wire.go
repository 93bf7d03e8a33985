package replay

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wal"
)

// Reading encoded records without decoding them: exports of long runs spend
// most of their time in the protobuf decoder otherwise (it allocates every
// item, value and key of every history row). The fast paths below cover the
// records a long run is made of (history rows, stats, config and summary
// updates) and hand anything unusual to the full decoder, so their output is
// the same byte for byte; FuzzJSONEncoded checks that.

// wireHeader is the top level of an encoded Record.
type wireHeader struct {
	seq       uint64
	id        []byte
	time      int64
	clientID  []byte
	clientSeq uint64
	synth     bool
	kind      Kind
	payload   []byte
	payloads  int // payload fields seen; more than one needs the full decoder
}

// consumeTag is protowire.ConsumeTag refusing the field numbers the decoder
// refuses.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	if len(b) > 0 && b[0]-1<<3 < 0x80-1<<3 {
		// A one-byte tag (fields 1 to 15: every field the fast paths
		// read), decoded here: 5 to 10% off the fast paths' reads.
		return protowire.Number(b[0] >> 3), protowire.Type(b[0] & 7), 1
	}
	return consumeTagSlow(b)
}

func consumeTagSlow(b []byte) (protowire.Number, protowire.Type, int) {
	num, typ, n := protowire.ConsumeTag(b)
	if n >= 0 && num > protowire.MaxValidNumber {
		return 0, 0, -1
	}
	return num, typ, n
}

var errBadTag = errors.New("bad field tag")

// errSlow sends a record to the full decoder.
var errSlow = errors.New("replay: needs full decode")

// parseWire reads the top-level fields of an encoded Record. Fields are
// taken as the decoder takes them: the last occurrence of a scalar wins,
// unknown fields are skipped.
func parseWire(b []byte) (wireHeader, error) {
	var h wireHeader
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return h, errBadTag
		}
		b = b[n:]
		switch {
		case typ == protowire.VarintType && (num == 1 || num == 3 || num == 5 || num == 6):
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return h, protowire.ParseError(m)
			}
			b = b[m:]
			switch num {
			case 1:
				h.seq = v
			case 3:
				h.time = int64(v)
			case 5:
				h.clientSeq = v
			case 6:
				h.synth = v != 0
			}
		case typ == protowire.BytesType && (num == 2 || num == 4 || (num >= 10 && num <= 20)):
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return h, protowire.ParseError(m)
			}
			b = b[m:]
			switch {
			case num == 2:
				h.id = v
			case num == 4:
				if !utf8.Valid(v) {
					return h, errSlow
				}
				h.clientID = v
			default:
				h.kind, h.payload = kindOfField(int32(num)), v
				h.payloads++
			}
		default:
			if (num >= 1 && num <= 6) || (num >= 10 && num <= 20) {
				// A known field with the wrong wire type.
				return h, errSlow
			}
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return h, protowire.ParseError(m)
			}
			b = b[m:]
		}
	}
	return h, nil
}

// AppendJSONEncoded appends the encoded record data as AppendJSON would
// append its decoding, without decoding it when it can. It fails when data
// is not a valid record.
func AppendJSONEncoded(b []byte, data []byte) ([]byte, error) {
	h, err := parseWire(data)
	if err == nil && h.payloads <= 1 {
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

func appendJSONWire(b []byte, h *wireHeader) ([]byte, bool) {
	start := len(b)
	b = appendHeader(b, h.seq, h.id, h.time, h.clientID, h.clientSeq, h.synth, h.kind)
	if h.kind == KindNone {
		return append(b, '}'), true
	}
	var ok bool
	p := h.payload
	switch h.kind {
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
	step, items, ok := splitRowWire(p)
	if !ok {
		return b, false
	}
	b = append(b, `{"step":`...)
	b = strconv.AppendInt(b, step, 10)
	if len(items) > 0 {
		b = append(b, `,"items":`...)
		if b, ok = appendItemListWire(b, items, 2); !ok {
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
		if b, ok = appendItemListWire(b, p, 1); !ok {
			return b, false
		}
	}
	return append(b, '}'), true
}

// appendUpdateWire writes {"set":[...],"remove":[...]} from an encoded
// ConfigUpdate or SummaryUpdate whose set items all come before its removes.
func appendUpdateWire(b []byte, p []byte) ([]byte, bool) {
	set := p
	for len(p) > 0 {
		num, typ, n := consumeTag(p)
		if n < 0 || num != 1 || typ != protowire.BytesType {
			break
		}
		m := protowire.ConsumeFieldValue(num, typ, p[n:])
		if m < 0 {
			return b, false
		}
		p = p[n+m:]
	}
	set = set[:len(set)-len(p)]
	b = append(b, '{')
	var ok bool
	if len(set) > 0 {
		b = append(b, `"set":`...)
		if b, ok = appendItemListWire(b, set, 1); !ok {
			return b, false
		}
	}
	if len(p) > 0 {
		if len(set) > 0 {
			b = append(b, ',')
		}
		b = append(b, `"remove":[`...)
		for i := 0; len(p) > 0; i++ {
			num, typ, n := consumeTag(p)
			if n < 0 || num != 2 || typ != protowire.BytesType {
				return b, false
			}
			v, m := protowire.ConsumeBytes(p[n:])
			if m < 0 || !utf8.Valid(v) {
				return b, false
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = appendStringBytes(b, v)
			p = p[n+m:]
		}
		b = append(b, ']')
	}
	return append(b, '}'), true
}

// appendItemListWire writes the JSON array of a run of fields field holding
// encoded Items, which must make up all of p.
func appendItemListWire(b []byte, p []byte, field protowire.Number) ([]byte, bool) {
	b = append(b, '[')
	for i := 0; len(p) > 0; i++ {
		num, typ, n := consumeTag(p)
		if n < 0 || num != field || typ != protowire.BytesType {
			return b, false
		}
		it, m := protowire.ConsumeBytes(p[n:])
		if m < 0 {
			return b, false
		}
		p = p[n+m:]
		if i > 0 {
			b = append(b, ',')
		}
		var ok bool
		if b, ok = appendItemWire(b, it); !ok {
			return b, false
		}
	}
	return append(b, ']'), true
}

// appendItemWire writes one encoded Item.
func appendItemWire(b []byte, p []byte) ([]byte, bool) {
	key, val, ok := splitItemWire(p)
	if !ok {
		return b, false
	}
	v, ok := parseValueWire(val)
	if !ok {
		return b, false
	}
	b = append(b, `{"key":`...)
	b = appendStringBytes(b, key)
	switch v.field {
	case 1:
		b = append(b, `,"double":`...)
		b = appendDouble(b, math.Float64frombits(v.x))
	case 2:
		b = append(b, `,"int":`...)
		b = strconv.AppendInt(b, int64(v.x), 10)
	case 3:
		b = append(b, `,"bool":`...)
		b = strconv.AppendBool(b, v.x != 0)
	case 4:
		b = append(b, `,"string":`...)
		b = appendStringBytes(b, v.b)
	case 5:
		b = appendJSONValue(b, v.b)
	}
	return append(b, '}'), true
}

// splitItemWire returns the key and the encoded value of an encoded Item.
// Anything but at most one key (valid UTF-8) and at most one value goes to
// the full decoder. val is nil when the item has no value, empty when it has
// an empty one.
func splitItemWire(p []byte) (key, val []byte, ok bool) {
	haveKey, haveVal := false, false
	for len(p) > 0 {
		num, typ, n := consumeTag(p)
		if n < 0 || typ != protowire.BytesType || (num != 1 && num != 2) {
			return nil, nil, false
		}
		v, m := protowire.ConsumeBytes(p[n:])
		if m < 0 {
			return nil, nil, false
		}
		p = p[n+m:]
		if num == 1 {
			if haveKey || !utf8.Valid(v) {
				return nil, nil, false
			}
			key, haveKey = v, true
		} else {
			if haveVal {
				return nil, nil, false
			}
			// Non-nil even when empty: the item has a value.
			val, haveVal = v, true
			if val == nil {
				val = []byte{}
			}
		}
	}
	return key, val, true
}

// wireValue is an encoded Value read without decoding: field is the oneof
// field set (0 for none), x its number bits, b its bytes.
type wireValue struct {
	field protowire.Number
	x     uint64
	b     []byte
}

// parseValueWire reads an encoded Value holding at most one field of the
// right wire type; anything else goes to the full decoder.
func parseValueWire(val []byte) (wireValue, bool) {
	var v wireValue
	if len(val) == 0 {
		return v, true
	}
	num, typ, n := consumeTag(val)
	if n < 0 {
		return v, false
	}
	rest := val[n:]
	var m int
	switch {
	case num == 1 && typ == protowire.Fixed64Type:
		v.x, m = protowire.ConsumeFixed64(rest)
	case (num == 2 || num == 3) && typ == protowire.VarintType:
		v.x, m = protowire.ConsumeVarint(rest)
	case (num == 4 || num == 5) && typ == protowire.BytesType:
		v.b, m = protowire.ConsumeBytes(rest)
		if m >= 0 && num == 4 && !utf8.Valid(v.b) {
			return v, false
		}
	default:
		return v, false
	}
	if m < 0 || m != len(rest) {
		// Malformed, or more than one field in the value.
		return v, false
	}
	v.field = num
	return v, true
}

// value builds the decoded Value; bytes are copied.
func (v wireValue) value() *runlogv1.Value {
	switch v.field {
	case 1:
		return &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: math.Float64frombits(v.x)}}
	case 2:
		return &runlogv1.Value{Kind: &runlogv1.Value_IntValue{IntValue: int64(v.x)}}
	case 3:
		return &runlogv1.Value{Kind: &runlogv1.Value_BoolValue{BoolValue: v.x != 0}}
	case 4:
		return &runlogv1.Value{Kind: &runlogv1.Value_StringValue{StringValue: string(v.b)}}
	case 5:
		return &runlogv1.Value{Kind: &runlogv1.Value_JsonValue{JsonValue: append([]byte{}, v.b...)}}
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
	_, p, ok = splitRowWire(p)
	if !ok {
		return nil, false
	}
	type kept struct {
		key []byte
		val []byte // nil: no value
		v   wireValue
	}
	var (
		buf     [16]kept
		ks      = buf[:0]
		keyLen  int
		doubles int
	)
	for len(p) > 0 {
		num, typ, n := consumeTag(p)
		if n < 0 || num != 2 || typ != protowire.BytesType {
			return nil, false
		}
		it, m := protowire.ConsumeBytes(p[n:])
		if m < 0 {
			return nil, false
		}
		p = p[n+m:]
		key, val, ok := splitItemWire(it)
		if !ok {
			return nil, false
		}
		v, ok := parseValueWire(val)
		if !ok {
			return nil, false
		}
		if want != nil && !want[string(key)] {
			continue
		}
		ks = append(ks, kept{key: key, val: val, v: v})
		keyLen += len(key)
		if v.field == 1 {
			doubles++
		}
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
			if k.v.field == 1 {
				d := &dblA[0]
				dblA = dblA[1:]
				d.DoubleValue = math.Float64frombits(k.v.x)
				v.Kind = d
			} else if k.v.field != 0 {
				v.Kind = k.v.value().Kind
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
func (f *Filter) headerMatch(h *wireHeader) bool {
	if f.From != 0 && h.seq < f.From || f.To != 0 && h.seq > f.To {
		return false
	}
	if !f.Since.IsZero() && h.time < f.Since.UnixNano() {
		return false
	}
	if !f.Until.IsZero() && h.time > f.Until.UnixNano() {
		return false
	}
	if f.Client != "" && string(h.clientID) != f.Client {
		return false
	}
	return f.matchKind(h.kind)
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
		h, err := parseWire(data)
		if errors.Is(err, errSlow) {
			// The full decoder decides (and reads client_id as it does).
			var r runlogv1.Record
			if err := proto.Unmarshal(data, &r); err != nil {
				return &wal.CorruptError{Path: pathOf(src), Seq: seq, Err: err}
			}
			if !f.Match(&r) {
				return nil
			}
			return fn(seq, data)
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

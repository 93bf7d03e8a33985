package client

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wire"
)

// kind is the Value oneof case a field encodes to.
type kind uint8

const (
	kindDouble kind = iota + 1
	kindInt
	kindBool
	kindString
	kindJSON
)

// field is one converted key and value, ready to encode. Exactly one of the
// value fields is meaningful, chosen by kind.
type field struct {
	key  string
	kind kind
	num  uint64 // kindDouble: float bits; kindInt: int64 bits; kindBool: 0 or 1
	str  string // kindString
	raw  []byte // kindJSON
}

// checkKey enforces the service's key rule at the call, so a bad key is an
// error naming it instead of a rejection much later.
func checkKey(key string) error {
	if key == "" {
		return fmt.Errorf("key is empty: %w", ErrInvalid)
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("key %q is not valid UTF-8: %w", key, ErrInvalid)
	}
	return nil
}

// convert turns a Go value into a field. Scalars keep their type; []byte and
// json.RawMessage are taken as JSON text; anything else is JSON-encoded.
func convert(key string, v any) (field, error) {
	f := field{key: key}
	switch x := v.(type) {
	case float64:
		f.kind, f.num = kindDouble, math.Float64bits(x)
	case float32:
		f.kind, f.num = kindDouble, math.Float64bits(float64(x))
	case int:
		f.kind, f.num = kindInt, uint64(int64(x))
	case int64:
		f.kind, f.num = kindInt, uint64(x)
	case int32:
		f.kind, f.num = kindInt, uint64(int64(x))
	case int16:
		f.kind, f.num = kindInt, uint64(int64(x))
	case int8:
		f.kind, f.num = kindInt, uint64(int64(x))
	case uint:
		return convertUint(key, uint64(x)), nil
	case uint64:
		return convertUint(key, x), nil
	case uint32:
		f.kind, f.num = kindInt, uint64(x)
	case uint16:
		f.kind, f.num = kindInt, uint64(x)
	case uint8:
		f.kind, f.num = kindInt, uint64(x)
	case bool:
		f.kind = kindBool
		if x {
			f.num = 1
		}
	case string:
		if !utf8.ValidString(x) {
			return f, fmt.Errorf("value of key %q is not valid UTF-8: %w", key, ErrInvalid)
		}
		f.kind, f.str = kindString, x
	case json.RawMessage:
		return convertJSON(key, x)
	case []byte:
		return convertJSON(key, x)
	case nil:
		f.kind, f.raw = kindJSON, []byte("null")
	default:
		raw, err := json.Marshal(v)
		if err != nil {
			return f, fmt.Errorf("value of key %q (%s) cannot be encoded as JSON: %v: %w", key, reflect.TypeOf(v), err, ErrInvalid)
		}
		f.kind, f.raw = kindJSON, raw
	}
	return f, nil
}

// convertUint keeps a uint64 that does not fit an int64 exact by sending it
// as a JSON number rather than rounding it through a double.
func convertUint(key string, x uint64) field {
	if x <= math.MaxInt64 {
		return field{key: key, kind: kindInt, num: x}
	}
	return field{key: key, kind: kindJSON, raw: fmt.Appendf(nil, "%d", x)}
}

func convertJSON(key string, raw []byte) (field, error) {
	if !json.Valid(raw) {
		return field{}, fmt.Errorf("value of key %q is []byte but not valid JSON: %w", key, ErrInvalid)
	}
	// The caller may reuse its buffer after the call returns.
	return field{key: key, kind: kindJSON, raw: slices.Clone(raw)}, nil
}

// convertMap appends the fields of m to dst in key order, so the same map
// always encodes to the same bytes.
func convertMap(dst []field, m map[string]any) ([]field, error) {
	start := len(dst)
	for k, v := range m {
		if err := checkKey(k); err != nil {
			return dst[:start], err
		}
		f, err := convert(k, v)
		if err != nil {
			return dst[:start], err
		}
		dst = append(dst, f)
	}
	slices.SortFunc(dst[start:], func(a, b field) int { return strings.Compare(a.key, b.key) })
	return dst, nil
}

func (f *field) valueSize() int {
	switch f.kind {
	case kindDouble:
		return 1 + 8
	case kindInt:
		return 1 + protowire.SizeVarint(f.num)
	case kindBool:
		return 1 + 1
	case kindString:
		return 1 + protowire.SizeBytes(len(f.str))
	default:
		return 1 + protowire.SizeBytes(len(f.raw))
	}
}

func (f *field) itemSize() int {
	return 1 + protowire.SizeBytes(len(f.key)) + 1 + protowire.SizeBytes(f.valueSize())
}

func (f *field) appendItem(b []byte) []byte {
	b = protowire.AppendTag(b, wire.ItemKey, protowire.BytesType)
	b = protowire.AppendString(b, f.key)
	b = protowire.AppendTag(b, wire.ItemValue, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(f.valueSize()))
	switch f.kind {
	case kindDouble:
		b = protowire.AppendTag(b, wire.ValueDouble, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, f.num)
	case kindInt:
		b = protowire.AppendTag(b, wire.ValueInt, protowire.VarintType)
		b = protowire.AppendVarint(b, f.num)
	case kindBool:
		b = protowire.AppendTag(b, wire.ValueBool, protowire.VarintType)
		b = protowire.AppendVarint(b, f.num)
	case kindString:
		b = protowire.AppendTag(b, wire.ValueString, protowire.BytesType)
		b = protowire.AppendString(b, f.str)
	default:
		b = protowire.AppendTag(b, wire.ValueJSON, protowire.BytesType)
		b = protowire.AppendBytes(b, f.raw)
	}
	return b
}

// toItems builds the generated form of fields, for payloads that are not
// encoded by hand.
func toItems(fields []field) []*runlogv1.Item {
	items := make([]*runlogv1.Item, len(fields))
	for i := range fields {
		f := &fields[i]
		v := new(runlogv1.Value)
		switch f.kind {
		case kindDouble:
			v.Kind = &runlogv1.Value_DoubleValue{DoubleValue: math.Float64frombits(f.num)}
		case kindInt:
			v.Kind = &runlogv1.Value_IntValue{IntValue: int64(f.num)}
		case kindBool:
			v.Kind = &runlogv1.Value_BoolValue{BoolValue: f.num != 0}
		case kindString:
			v.Kind = &runlogv1.Value_StringValue{StringValue: f.str}
		default:
			v.Kind = &runlogv1.Value_JsonValue{JsonValue: f.raw}
		}
		items[i] = &runlogv1.Item{Key: f.key, Value: v}
	}
	return items
}

// headerSize is the size of the client_id and client_seq fields of a record.
func headerSize(clientID string, seq uint64) int {
	return 1 + protowire.SizeBytes(len(clientID)) + 1 + protowire.SizeVarint(seq)
}

func appendHeader(b []byte, clientID string, seq uint64) []byte {
	b = protowire.AppendTag(b, wire.RecordClientID, protowire.BytesType)
	b = protowire.AppendString(b, clientID)
	b = protowire.AppendTag(b, wire.RecordClientSeq, protowire.VarintType)
	return protowire.AppendVarint(b, seq)
}

// historySize returns the encoded size of a history record and of its
// HistoryRow body.
func historySize(clientID string, seq uint64, step int64, fields []field) (total, body int) {
	if step != 0 {
		body += 1 + protowire.SizeVarint(uint64(step))
	}
	for i := range fields {
		body += 1 + protowire.SizeBytes(fields[i].itemSize())
	}
	return headerSize(clientID, seq) + 1 + protowire.SizeBytes(body), body
}

// appendHistory encodes a Record with a HistoryRow payload. body must be the
// value historySize returned for the same arguments.
func appendHistory(b []byte, clientID string, seq uint64, step int64, fields []field, body int) []byte {
	b = appendHeader(b, clientID, seq)
	b = protowire.AppendTag(b, wire.RecordHistory, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(body))
	if step != 0 {
		b = protowire.AppendTag(b, wire.HistoryStep, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(step))
	}
	for i := range fields {
		f := &fields[i]
		b = protowire.AppendTag(b, wire.HistoryItems, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(f.itemSize()))
		b = f.appendItem(b)
	}
	return b
}

// payloadSize and appendPayload encode any record: the client fields by hand,
// followed by the generated encoding of rec, which must leave them unset. The
// wire format allows the concatenation: fields may come in any order.
func payloadSize(clientID string, seq uint64, rec *runlogv1.Record) int {
	return headerSize(clientID, seq) + proto.Size(rec)
}

func appendPayload(b []byte, clientID string, seq uint64, rec *runlogv1.Record) ([]byte, error) {
	b = appendHeader(b, clientID, seq)
	return proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(b, rec)
}

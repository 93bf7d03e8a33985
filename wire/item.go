package wire

import (
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// The helpers below read payloads laid out as encoders write them (a row's
// step before its items, one key and one value per item, an update's set
// items before its removes) without decoding them. Each reports ok false
// for any other layout, and for anything the decoder might refuse: the
// caller then decodes in full, so only the decoder decides that a record is
// invalid. Returned slices share the input.

// SplitRow splits an encoded HistoryRow whose step comes before its items
// into the step and the encoded items (the rest of p from the first item
// on). It does not read the items: ItemsOK or a Scanner does.
func SplitRow(p []byte) (step int64, items []byte, ok bool) {
	s := NewScanner(p)
	for {
		rest := s.Rest()
		if len(rest) > 0 && rest[0] == tagRowItems {
			// The first item: its tag is one byte, and the items are the
			// caller's to read.
			return step, rest, true
		}
		if !s.Next() {
			return step, nil, s.Err() == nil
		}
		if !s.Is(HistoryStep, protowire.VarintType) {
			return 0, nil, false
		}
		step = int64(s.f.U)
	}
}

// SplitUpdate splits an encoded ConfigUpdate or SummaryUpdate whose set
// items come before its removes into the two runs of fields. The set run is
// not checked beyond its tags; the remove run is entirely removes of valid
// UTF-8.
func SplitUpdate(p []byte) (set, remove []byte, ok bool) {
	s := NewScanner(p)
	n := 0
	for s.Next() && s.Is(UpdateSet, protowire.BytesType) {
		n = len(p) - len(s.Rest())
	}
	set, remove = p[:n], p[n:]
	s = NewScanner(remove)
	for s.Next() {
		if !s.Is(UpdateRemove, protowire.BytesType) || !utf8.Valid(s.f.B) {
			return nil, nil, false
		}
	}
	return set, remove, s.Err() == nil
}

// SplitItem returns the key and the encoded value of an encoded Item that
// holds at most one key (valid UTF-8) and at most one value. val is nil
// when the item has no value, empty when it has an empty one.
func SplitItem(p []byte) (key, val []byte, ok bool) {
	haveKey, haveVal := false, false
	s := NewScanner(p)
	for s.Next() {
		switch {
		case s.Is(ItemKey, protowire.BytesType):
			if haveKey || !utf8.Valid(s.f.B) {
				return nil, nil, false
			}
			key, haveKey = s.f.B, true
		case s.Is(ItemValue, protowire.BytesType):
			if haveVal {
				return nil, nil, false
			}
			// Non-nil even when empty: the item has a value.
			val, haveVal = s.f.B, true
			if val == nil {
				val = []byte{}
			}
		default:
			return nil, nil, false
		}
	}
	return key, val, s.Err() == nil
}

// Value is an encoded runlog.v1.Value read without decoding: Field is the
// oneof member set (0 for none), X its number bits (a double's bits, an
// int's two's complement, a bool's 0 or 1), B its bytes.
type Value struct {
	Field protowire.Number
	X     uint64
	B     []byte
}

// ParseValue reads an encoded Value holding at most one field, of the
// declared wire type.
func ParseValue(val []byte) (Value, bool) {
	var v Value
	if len(val) == 0 {
		return v, true
	}
	s := NewScanner(val)
	if !s.Next() {
		return v, false
	}
	switch f := s.f; {
	case f.Num == ValueDouble && f.Type == protowire.Fixed64Type,
		(f.Num == ValueInt || f.Num == ValueBool) && f.Type == protowire.VarintType,
		f.Num == ValueJSON && f.Type == protowire.BytesType:
	case f.Num == ValueString && f.Type == protowire.BytesType:
		if !utf8.Valid(f.B) {
			return v, false
		}
	default:
		return v, false
	}
	if len(s.Rest()) != 0 {
		// More than one field in the value.
		return v, false
	}
	v.Field = s.f.Num
	switch s.f.Type {
	case protowire.BytesType:
		v.B = s.f.B
	default:
		v.X = s.f.U
		if v.Field == ValueBool && v.X != 0 {
			v.X = 1
		}
	}
	return v, true
}

// ItemsOK reports whether p is a run of fields numbered field holding
// encoded Items that SplitItem and ParseValue take (and so the decoder
// accepts), without building them.
func ItemsOK(p []byte, field protowire.Number) bool {
	tag := byte(field)<<3 | byte(protowire.BytesType)
	for len(p) > 0 {
		var it []byte
		if len(p) >= 2 && p[0] == tag && p[1] < 0x80 && int(p[1]) <= len(p)-2 {
			// A one-byte length: the items of an ordinary row.
			it, p = p[2:2+p[1]], p[2+p[1]:]
		} else {
			var ok bool
			if it, p, ok = nextItem(p, field); !ok {
				return false
			}
		}
		if doubleItem(it) {
			continue
		}
		_, val, ok := SplitItem(it)
		if !ok {
			return false
		}
		if _, ok := ParseValue(val); !ok {
			return false
		}
	}
	return true
}

// nextItem reads the first field of p, which must be an encoded Item in
// field, and returns it and the rest of p. It is apart from ItemsOK to keep
// the scanner off that loop's frame.
//
//go:noinline
func nextItem(p []byte, field protowire.Number) (it, rest []byte, ok bool) {
	s := NewScanner(p)
	if !s.Next() || !s.Is(field, protowire.BytesType) {
		return nil, nil, false
	}
	return s.f.B, s.rest, true
}

const (
	tagRowItems    = byte(HistoryItems)<<3 | byte(protowire.BytesType)
	tagItemKey     = byte(ItemKey)<<3 | byte(protowire.BytesType)
	tagItemValue   = byte(ItemValue)<<3 | byte(protowire.BytesType)
	tagValueDouble = byte(ValueDouble)<<3 | byte(protowire.Fixed64Type)
)

// doubleItem reports whether it is an encoded Item with an ASCII key and a
// double value, as encoders write a metric: key, then value, with one-byte
// lengths. Checking that byte by byte makes checking an ordinary row about
// three times faster than SplitItem and ParseValue, which take every other
// item.
func doubleItem(it []byte) bool {
	if len(it) < 2 || it[0] != tagItemKey || it[1] >= 0x80 {
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
	return v[0] == tagItemValue && v[1] == 9 && v[2] == tagValueDouble
}

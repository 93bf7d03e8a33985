package wire

import (
	"encoding/binary"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// NumericItem reads an encoded Item as a chart reads it: its key and, for a
// double, int or bool value, that value as a float64 (a bool as 0 or 1);
// numeric is false for any other value and for none. It takes the layouts
// SplitItem and ParseValue take and reports ok false for any other. A
// metric as encoders write it (an ASCII key, then a double) is read byte by
// byte, without the scanner.
func NumericItem(it []byte) (key []byte, v float64, numeric, ok bool) {
	if doubleItem(it) {
		k := 2 + int(it[1])
		return it[2:k], math.Float64frombits(binary.LittleEndian.Uint64(it[k+3:])), true, true
	}
	key, enc, ok := SplitItem(it)
	if !ok {
		return nil, 0, false, false
	}
	val, ok := ParseValue(enc)
	if !ok {
		return nil, 0, false, false
	}
	switch val.Field {
	case ValueDouble:
		return key, math.Float64frombits(val.X), true, true
	case ValueInt:
		return key, float64(int64(val.X)), true, true
	case ValueBool:
		return key, float64(val.X), true, true
	}
	return key, 0, false, true
}

// NumericRow reads an encoded HistoryRow laid out as encoders write it (its
// step before its items): it returns the step and calls fn with the key and
// value of each numeric item, in order, as NumericItem reads them. The key
// shares p. ok is false for any other layout, and fn may then have been
// called for some of the items: the caller drops them and decodes in full.
func NumericRow(p []byte, fn func(key []byte, v float64)) (step int64, ok bool) {
	step, items, ok := SplitRow(p)
	if !ok {
		return 0, false
	}
	s := NewScanner(items)
	for s.Next() {
		if !s.Is(HistoryItems, protowire.BytesType) {
			return 0, false
		}
		key, v, numeric, ok := NumericItem(s.f.B)
		if !ok {
			return 0, false
		}
		if numeric {
			fn(key, v)
		}
	}
	return step, s.Err() == nil
}

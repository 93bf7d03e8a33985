package wire

import (
	"encoding/binary"
	"math"
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

package replay

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// ExitReasonName returns the lower-case name of an exit reason
// ("finished"), "unspecified" for none, and the number of one this build
// does not know.
func ExitReasonName(r runlogv1.ExitReason) string {
	if r == runlogv1.ExitReason_EXIT_REASON_UNSPECIFIED {
		return "unspecified"
	}
	if n, ok := reasonNames[r]; ok {
		return n
	}
	return strconv.Itoa(int(r))
}

// Value returns v as a Go value for encoding/json: float64, int64, bool or
// string; a JSON value embedded (json.RawMessage) when it is valid JSON,
// else as a string; NaN and infinities as strings, which JSON has no
// numbers for ("NaN", "+Inf", "-Inf"); nil for no value.
func Value(v *runlogv1.Value) any {
	switch k := v.GetKind().(type) {
	case *runlogv1.Value_DoubleValue:
		f := k.DoubleValue
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return strconv.FormatFloat(f, 'g', -1, 64)
		}
		return f
	case *runlogv1.Value_IntValue:
		return k.IntValue
	case *runlogv1.Value_BoolValue:
		return k.BoolValue
	case *runlogv1.Value_StringValue:
		return k.StringValue
	case *runlogv1.Value_JsonValue:
		if json.Valid(k.JsonValue) {
			return json.RawMessage(k.JsonValue)
		}
		return string(k.JsonValue)
	}
	return nil
}

// ItemMap returns items as a map from key to Value, nil when there are
// none.
func ItemMap(items []*runlogv1.Item) map[string]any {
	if len(items) == 0 {
		return nil
	}
	m := make(map[string]any, len(items))
	for _, it := range items {
		m[it.GetKey()] = Value(it.GetValue())
	}
	return m
}

// AppendTypedValue appends v in full as "V (T)": V as the JSON format
// writes it (AppendItem), T its type there (double, int, bool, string, json
// or json_base64); "(no value)" for none.
func AppendTypedValue(b []byte, v *runlogv1.Value) []byte {
	m := appendValueMember(nil, v) // ,"T":V
	typ, val, ok := bytes.Cut(bytes.TrimPrefix(m, []byte(`,"`)), []byte(`":`))
	if !ok {
		return append(b, "(no value)"...)
	}
	b = append(b, val...)
	b = append(b, " ("...)
	b = append(b, typ...)
	return append(b, ')')
}

package wandbgate

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	wandbv1 "github.com/runlog/runlog/proto/wandb/v1"
)

// itemKey is a wandb item's key: key, else its nested_key joined with "/",
// runlog's separator for nested keys.
func itemKey(key string, nested []string) string {
	if key != "" {
		return key
	}
	return strings.Join(nested, "/")
}

// jsonValue turns a wandb value_json into a runlog value: integers that fit
// int64, other numbers (and NaN, Infinity, -Infinity, which wandb spells
// as bare words) as doubles, booleans, strings; objects, arrays and null
// stay JSON.
func jsonValue(s string) *runlogv1.Value {
	t := strings.TrimSpace(s)
	switch t {
	case "true":
		return &runlogv1.Value{Kind: &runlogv1.Value_BoolValue{BoolValue: true}}
	case "false":
		return &runlogv1.Value{Kind: &runlogv1.Value_BoolValue{BoolValue: false}}
	case "NaN":
		return doubleValue(math.NaN())
	case "Infinity":
		return doubleValue(math.Inf(1))
	case "-Infinity":
		return doubleValue(math.Inf(-1))
	case "":
		return &runlogv1.Value{Kind: &runlogv1.Value_JsonValue{JsonValue: []byte("null")}}
	}
	switch c := t[0]; {
	case c == '"':
		var str string
		if err := json.Unmarshal([]byte(t), &str); err == nil {
			return &runlogv1.Value{Kind: &runlogv1.Value_StringValue{StringValue: str}}
		}
	case c == '-' || (c >= '0' && c <= '9'):
		if !strings.ContainsAny(t, ".eE") {
			if i, err := strconv.ParseInt(t, 10, 64); err == nil {
				return &runlogv1.Value{Kind: &runlogv1.Value_IntValue{IntValue: i}}
			}
		}
		if f, err := strconv.ParseFloat(t, 64); err == nil {
			return doubleValue(f)
		}
	}
	return &runlogv1.Value{Kind: &runlogv1.Value_JsonValue{JsonValue: []byte(t)}}
}

func doubleValue(f float64) *runlogv1.Value {
	return &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: f}}
}

// historyValue reads a history item's typed case, else its value_json.
func historyValue(it *wandbv1.HistoryItem) *runlogv1.Value {
	switch v := it.GetValue().(type) {
	case *wandbv1.HistoryItem_None:
		return &runlogv1.Value{Kind: &runlogv1.Value_JsonValue{JsonValue: []byte("null")}}
	case *wandbv1.HistoryItem_Boolean:
		return &runlogv1.Value{Kind: &runlogv1.Value_BoolValue{BoolValue: v.Boolean}}
	case *wandbv1.HistoryItem_Integer:
		return &runlogv1.Value{Kind: &runlogv1.Value_IntValue{IntValue: v.Integer}}
	case *wandbv1.HistoryItem_Number:
		return doubleValue(v.Number)
	case *wandbv1.HistoryItem_Text:
		return &runlogv1.Value{Kind: &runlogv1.Value_StringValue{StringValue: v.Text}}
	case *wandbv1.HistoryItem_Json:
		return jsonValue(v.Json)
	}
	return jsonValue(it.GetValueJson())
}

// valueJSON is the wandb value_json of a runlog value, spelled the way the
// SDK's encoder spells it (NaN and the infinities as bare words).
func valueJSON(v *runlogv1.Value) string {
	switch k := v.GetKind().(type) {
	case *runlogv1.Value_DoubleValue:
		f := k.DoubleValue
		switch {
		case math.IsNaN(f):
			return "NaN"
		case math.IsInf(f, 1):
			return "Infinity"
		case math.IsInf(f, -1):
			return "-Infinity"
		}
		s := strconv.FormatFloat(f, 'g', -1, 64)
		if !strings.ContainsAny(s, ".eE") {
			s += ".0"
		}
		return s
	case *runlogv1.Value_IntValue:
		return strconv.FormatInt(k.IntValue, 10)
	case *runlogv1.Value_BoolValue:
		return strconv.FormatBool(k.BoolValue)
	case *runlogv1.Value_StringValue:
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.Encode(k.StringValue)
		return strings.TrimSuffix(b.String(), "\n")
	case *runlogv1.Value_JsonValue:
		return string(k.JsonValue)
	}
	return "null"
}

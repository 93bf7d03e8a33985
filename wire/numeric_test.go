package wire_test

import (
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wire"
)

func TestNumericItem(t *testing.T) {
	tests := []struct {
		name    string
		item    *runlogv1.Item
		numeric bool
		want    float64
	}{
		{"double", &runlogv1.Item{Key: "loss", Value: &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: 0.25}}}, true, 0.25},
		{"negative zero", &runlogv1.Item{Key: "z", Value: &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: math.Copysign(0, -1)}}}, true, math.Copysign(0, -1)},
		{"nan", &runlogv1.Item{Key: "n", Value: &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: math.NaN()}}}, true, math.NaN()},
		{"int", &runlogv1.Item{Key: "epoch", Value: &runlogv1.Value{Kind: &runlogv1.Value_IntValue{IntValue: -7}}}, true, -7},
		{"true", &runlogv1.Item{Key: "ok", Value: &runlogv1.Value{Kind: &runlogv1.Value_BoolValue{BoolValue: true}}}, true, 1},
		{"false", &runlogv1.Item{Key: "ok", Value: &runlogv1.Value{Kind: &runlogv1.Value_BoolValue{}}}, true, 0},
		{"string", &runlogv1.Item{Key: "s", Value: &runlogv1.Value{Kind: &runlogv1.Value_StringValue{StringValue: "x"}}}, false, 0},
		{"json", &runlogv1.Item{Key: "j", Value: &runlogv1.Value{Kind: &runlogv1.Value_JsonValue{JsonValue: []byte("[1]")}}}, false, 0},
		{"no value", &runlogv1.Item{Key: "v"}, false, 0},
		{"unicode key", &runlogv1.Item{Key: "précision", Value: &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: 3}}}, true, 3},
		{"long key", &runlogv1.Item{Key: strings.Repeat("k", 200), Value: &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: 4}}}, true, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := proto.Marshal(tt.item)
			if err != nil {
				t.Fatal(err)
			}
			key, v, numeric, ok := wire.NumericItem(b)
			if !ok {
				t.Fatal("not ok")
			}
			if string(key) != tt.item.GetKey() {
				t.Fatalf("key %q, want %q", key, tt.item.GetKey())
			}
			if numeric != tt.numeric {
				t.Fatalf("numeric %v, want %v", numeric, tt.numeric)
			}
			if math.Float64bits(v) != math.Float64bits(tt.want) && !(math.IsNaN(v) && math.IsNaN(tt.want)) {
				t.Fatalf("value %v, want %v", v, tt.want)
			}
		})
	}
	// Layouts the readers do not take are refused, never misread.
	for name, b := range map[string][]byte{
		"two keys":        {0x0a, 0x01, 'a', 0x0a, 0x01, 'b'},
		"key not utf-8":   {0x0a, 0x01, 0xff},
		"truncated value": {0x0a, 0x01, 'a', 0x12, 0x09, 0x09, 0, 0},
	} {
		if _, _, _, ok := wire.NumericItem(b); ok {
			t.Errorf("%s: ok", name)
		}
	}
}

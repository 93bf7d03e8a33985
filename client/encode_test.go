package client

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

func dbl(v float64) *runlogv1.Value {
	return &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: v}}
}
func i64(v int64) *runlogv1.Value {
	return &runlogv1.Value{Kind: &runlogv1.Value_IntValue{IntValue: v}}
}
func str(v string) *runlogv1.Value {
	return &runlogv1.Value{Kind: &runlogv1.Value_StringValue{StringValue: v}}
}
func boolean(v bool) *runlogv1.Value {
	return &runlogv1.Value{Kind: &runlogv1.Value_BoolValue{BoolValue: v}}
}
func js(v string) *runlogv1.Value {
	return &runlogv1.Value{Kind: &runlogv1.Value_JsonValue{JsonValue: []byte(v)}}
}

// TestAppendHistory checks the hand-written encoder against the generated
// decoder: the bytes must decode to exactly the record we meant.
func TestAppendHistory(t *testing.T) {
	type point struct{ X, Y int }
	tests := []struct {
		name  string
		step  int64
		seq   uint64
		items map[string]any
		want  []*runlogv1.Item
	}{
		{"empty row at step zero", 0, 1, map[string]any{}, nil},
		{"floats", 7, 2, map[string]any{"b": 2.5, "a": float32(0.5)},
			[]*runlogv1.Item{{Key: "a", Value: dbl(0.5)}, {Key: "b", Value: dbl(2.5)}}},
		{"zero values are present", 1, 3, map[string]any{"f": 0.0, "i": 0, "s": "", "t": false},
			[]*runlogv1.Item{{Key: "f", Value: dbl(0)}, {Key: "i", Value: i64(0)}, {Key: "s", Value: str("")}, {Key: "t", Value: boolean(false)}}},
		{"integers of every width", 1 << 40, 1 << 33, map[string]any{
			"i": -1, "i8": int8(-8), "i16": int16(16), "i32": int32(-32), "i64": int64(math.MinInt64),
			"u": uint(1), "u8": uint8(8), "u16": uint16(16), "u32": uint32(math.MaxUint32), "u64": uint64(math.MaxInt64)},
			[]*runlogv1.Item{
				{Key: "i", Value: i64(-1)}, {Key: "i16", Value: i64(16)}, {Key: "i32", Value: i64(-32)},
				{Key: "i64", Value: i64(math.MinInt64)}, {Key: "i8", Value: i64(-8)},
				{Key: "u", Value: i64(1)}, {Key: "u16", Value: i64(16)}, {Key: "u32", Value: i64(math.MaxUint32)},
				{Key: "u64", Value: i64(math.MaxInt64)}, {Key: "u8", Value: i64(8)}}},
		{"uint64 beyond int64 stays exact", 3, 4, map[string]any{"big": uint64(math.MaxUint64)},
			[]*runlogv1.Item{{Key: "big", Value: js("18446744073709551615")}}},
		{"negative step", -5, 5, map[string]any{"x": true}, []*runlogv1.Item{{Key: "x", Value: boolean(true)}}},
		{"nan and infinities", 2, 6, map[string]any{"inf": math.Inf(1), "ninf": math.Inf(-1)},
			[]*runlogv1.Item{{Key: "inf", Value: dbl(math.Inf(1))}, {Key: "ninf", Value: dbl(math.Inf(-1))}}},
		{"json values", 2, 7, map[string]any{
			"raw": json.RawMessage(`{"a":1}`), "bytes": []byte(`[1,2]`), "nil": nil,
			"list": []int{1, 2}, "struct": point{1, 2}, "nested": map[string]any{"k": "v"}},
			[]*runlogv1.Item{
				{Key: "bytes", Value: js(`[1,2]`)}, {Key: "list", Value: js(`[1,2]`)},
				{Key: "nested", Value: js(`{"k":"v"}`)}, {Key: "nil", Value: js(`null`)},
				{Key: "raw", Value: js(`{"a":1}`)}, {Key: "struct", Value: js(`{"X":1,"Y":2}`)}}},
		{"unicode and long keys", 9, 8, map[string]any{"système/ñ": "値", strings.Repeat("k", 300): strings.Repeat("v", 200)},
			[]*runlogv1.Item{{Key: strings.Repeat("k", 300), Value: str(strings.Repeat("v", 200))}, {Key: "système/ñ", Value: str("値")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fields, err := convertMap(nil, tt.items)
			if err != nil {
				t.Fatal(err)
			}
			total, body := historySize("host-1-ab", tt.seq, tt.step, fields)
			b := appendHistory(make([]byte, 0, total), "host-1-ab", tt.seq, tt.step, fields, body)
			if len(b) != total {
				t.Fatalf("encoded %d bytes, size said %d", len(b), total)
			}
			got := new(runlogv1.Record)
			if err := proto.Unmarshal(b, got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			want := &runlogv1.Record{ClientId: "host-1-ab", ClientSeq: tt.seq,
				Payload: &runlogv1.Record_History{History: &runlogv1.HistoryRow{Step: tt.step, Items: tt.want}}}
			if !proto.Equal(want, got) {
				t.Errorf("decoded record differs:\n got %v\nwant %v", got, want)
			}
			// The generated encoder agrees byte for byte: same field order.
			gen, err := proto.MarshalOptions{Deterministic: true}.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			if string(gen) != string(b) {
				t.Errorf("bytes differ from the generated encoding:\n got %x\nwant %x", b, gen)
			}
		})
	}
}

func TestNaNSurvives(t *testing.T) {
	fields := []field{{key: "nan", kind: kindDouble, num: math.Float64bits(math.NaN())}}
	total, body := historySize("c", 1, 0, fields)
	b := appendHistory(nil, "c", 1, 0, fields, body)
	if len(b) != total {
		t.Fatalf("size %d, encoded %d", total, len(b))
	}
	r := new(runlogv1.Record)
	if err := proto.Unmarshal(b, r); err != nil {
		t.Fatal(err)
	}
	if v := r.GetHistory().GetItems()[0].GetValue().GetDoubleValue(); !math.IsNaN(v) {
		t.Errorf("got %v, want NaN", v)
	}
}

func TestAppendPayload(t *testing.T) {
	recs := []*runlogv1.Record{
		{Payload: &runlogv1.Record_Config{Config: &runlogv1.ConfigUpdate{Set: []*runlogv1.Item{{Key: "lr", Value: dbl(1e-3)}}, Remove: []string{"old"}}}},
		{Payload: &runlogv1.Record_Output{Output: &runlogv1.ConsoleOutput{Stream: Stderr, Text: "epoch 1\n"}}},
		{Payload: &runlogv1.Record_Rewind{Rewind: &runlogv1.Rewind{Step: 0}}},
		{Payload: &runlogv1.Record_File{File: &runlogv1.FileRef{Path: "model.pt", Size: 12}}},
	}
	for _, rec := range recs {
		size := payloadSize("cid", 300, rec)
		b, err := appendPayload(make([]byte, 0, size), "cid", 300, rec)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != size {
			t.Errorf("%T: size %d, encoded %d", rec.Payload, size, len(b))
		}
		got := new(runlogv1.Record)
		if err := proto.Unmarshal(b, got); err != nil {
			t.Fatal(err)
		}
		want := proto.Clone(rec).(*runlogv1.Record)
		want.ClientId, want.ClientSeq = "cid", 300
		if !proto.Equal(want, got) {
			t.Errorf("%T differs:\n got %v\nwant %v", rec.Payload, got, want)
		}
	}
}

func TestConvertRejects(t *testing.T) {
	tests := []struct {
		name  string
		items map[string]any
		want  string
	}{
		{"empty key", map[string]any{"": 1.0}, "key is empty"},
		{"invalid key", map[string]any{"a\xff": 1.0}, `key "a\xff" is not valid UTF-8`},
		{"invalid string", map[string]any{"k": "\xfe"}, `value of key "k" is not valid UTF-8`},
		{"bytes not json", map[string]any{"blob": []byte{0, 1}}, `value of key "blob" is []byte but not valid JSON`},
		{"unencodable", map[string]any{"ch": make(chan int)}, `value of key "ch" (chan int) cannot be encoded as JSON`},
		{"nan inside json", map[string]any{"list": []float64{math.NaN()}}, `value of key "list"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := convertMap(nil, tt.items)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestConvertCopiesJSONBytes(t *testing.T) {
	buf := []byte(`[1]`)
	fields, err := convertMap(nil, map[string]any{"k": buf})
	if err != nil {
		t.Fatal(err)
	}
	buf[1] = '2'
	if string(fields[0].raw) != `[1]` {
		t.Errorf("field kept the caller's buffer: %s", fields[0].raw)
	}
}

func FuzzAppendHistory(f *testing.F) {
	f.Add("loss", 1.5, int64(3), "text", int64(-1), uint64(1))
	f.Fuzz(func(t *testing.T, key string, d float64, i int64, s string, step int64, seq uint64) {
		fields, err := convertMap(nil, map[string]any{key: d, key + "/i": i, key + "/s": s})
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		total, body := historySize("c", seq, step, fields)
		b := appendHistory(nil, "c", seq, step, fields, body)
		if len(b) != total {
			t.Fatalf("size %d, encoded %d", total, len(b))
		}
		r := new(runlogv1.Record)
		if err := proto.Unmarshal(b, r); err != nil {
			t.Fatalf("decode: %v", err)
		}
		if r.GetClientSeq() != seq || r.GetHistory().GetStep() != step || len(r.GetHistory().GetItems()) != 3 {
			t.Fatalf("decoded %v", r)
		}
	})
}

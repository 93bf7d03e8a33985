package web

import (
	"math"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// TestFastValuesMatchDecoded: the wire read of a row gives what the decoded
// row gives, and declines layouts it cannot vouch for.
func TestFastValuesMatchDecoded(t *testing.T) {
	d := func(x float64) *runlogv1.Value {
		return &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: x}}
	}
	row := &runlogv1.HistoryRow{Step: 42, Items: []*runlogv1.Item{
		{Key: "loss", Value: d(0.5)},
		{Key: "n", Value: &runlogv1.Value{Kind: &runlogv1.Value_IntValue{IntValue: -7}}},
		{Key: "ok", Value: &runlogv1.Value{Kind: &runlogv1.Value_BoolValue{BoolValue: true}}},
		{Key: "name", Value: &runlogv1.Value{Kind: &runlogv1.Value_StringValue{StringValue: "x"}}},
		{Key: "nan", Value: d(math.NaN())},
		{Key: "inf", Value: d(math.Inf(1))},
		{Key: "none"},
	}}
	data, err := proto.Marshal(&runlogv1.Record{Seq: 3, TimeUnixNano: 9, Payload: &runlogv1.Record_History{History: row}})
	if err != nil {
		t.Fatal(err)
	}
	step, vals, ok := fastValues(data)
	if !ok || step != 42 {
		t.Fatalf("fast read: ok %v step %d", ok, step)
	}
	if want := numericItems(row.Items); !reflect.DeepEqual(vals, want) {
		t.Fatalf("fast read %v, decoded %v", vals, want)
	}
	// Items before the step: not the encoders' layout, left to the decoder.
	odd := append(protoField(2, []byte{0x0a, 0x01, 'k'}), 0x08, 0x05)
	rec := append([]byte{0x62, byte(len(odd))}, odd...) // field 12 (history)
	if _, _, ok := fastValues(rec); ok {
		t.Fatal("a row with its step after its items was read fast")
	}
}

func protoField(num byte, b []byte) []byte {
	return append([]byte{num<<3 | 2, byte(len(b))}, b...)
}

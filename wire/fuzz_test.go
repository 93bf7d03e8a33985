package wire

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// Each decoder of the package against proto.Unmarshal, the reference: a
// fast path may refuse what the decoder takes (its caller then decodes in
// full), but what it takes it must read as the decoder does, and it may
// fail only where the decoder fails. The seed corpus is in testdata/fuzz.

func marshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func dbl(k string, v float64) *runlogv1.Item {
	return &runlogv1.Item{Key: k, Value: &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: v}}}
}

func seedRecords() [][]byte {
	recs := []*runlogv1.Record{
		{Seq: 7, Id: make([]byte, 16), TimeUnixNano: 1234, ClientId: "c", ClientSeq: 3,
			Payload: &runlogv1.Record_Exit{Exit: &runlogv1.Exit{Code: 1}}},
		{Seq: 8, ClientSeq: 4, Payload: &runlogv1.Record_History{History: &runlogv1.HistoryRow{Step: 9, Items: []*runlogv1.Item{
			dbl("loss", 0.5), {Key: "n", Value: &runlogv1.Value{Kind: &runlogv1.Value_IntValue{IntValue: -2}}},
			{Key: "s", Value: &runlogv1.Value{Kind: &runlogv1.Value_StringValue{StringValue: "é"}}}}}}},
		{Seq: 9, Synthesized: true, Payload: &runlogv1.Record_Rewind{Rewind: &runlogv1.Rewind{Step: -1}}},
		{Seq: 10, Payload: &runlogv1.Record_Config{Config: &runlogv1.ConfigUpdate{Set: []*runlogv1.Item{dbl("lr", 1e-3)}, Remove: []string{"x"}}}},
		{Seq: 11, Payload: &runlogv1.Record_Stats{Stats: &runlogv1.SystemStats{Items: []*runlogv1.Item{dbl("cpu", 3)}}}},
	}
	out := [][]byte{nil, {0x08}, {0xa0, 0x01, 0x30}}
	for _, r := range recs {
		out = append(out, marshal(r))
	}
	return out
}

// FuzzScanner: the scanner fails exactly where the decoder fails on a
// message with no known fields.
func FuzzScanner(f *testing.F) {
	for _, b := range seedRecords() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s := NewScanner(b)
		n := 0
		for s.Next() {
			n++
		}
		derr := proto.Unmarshal(b, &emptypb.Empty{})
		if (s.Err() == nil) != (derr == nil) {
			t.Fatalf("scanner error %v, decoder error %v", s.Err(), derr)
		}
		if s.Err() == nil && len(s.Rest()) != 0 {
			t.Fatal("scan ended before the end")
		}
	})
}

// FuzzParseHeader: the header agrees with a full decode of the record.
func FuzzParseHeader(f *testing.F) {
	for _, b := range seedRecords() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		var r runlogv1.Record
		if derr := proto.Unmarshal(b, &r); derr != nil {
			return
		}
		if err == nil {
			err = h.CheckClientID()
		}
		if err != nil {
			t.Fatalf("ParseHeader failed on a record the decoder takes: %v", err)
		}
		if h.Seq != r.Seq || string(h.ID) != string(r.Id) || h.Time != r.TimeUnixNano ||
			string(h.ClientID) != r.ClientId || h.ClientSeq != r.ClientSeq || h.Synthesized != r.Synthesized {
			t.Fatalf("header %+v disagrees with record %v", h, &r)
		}
		if h.Kind != KindOf(&r) {
			t.Fatalf("kind %v, record %v", h.Kind, KindOf(&r))
		}
		if h.Payloads == 1 {
			// The payload alone decodes to the record's payload.
			var one runlogv1.Record
			b := appendLen(payloadTag(nil, h.Kind), h.Payload)
			if err := proto.Unmarshal(b, &one); err != nil || !proto.Equal(&one, &runlogv1.Record{Payload: r.Payload}) {
				t.Fatalf("payload %x decodes to %v, %v; record has %v", h.Payload, &one, err, r.Payload)
			}
		}
	})
}

// FuzzStep: Step reads a HistoryRow's and a Rewind's step as the decoder.
func FuzzStep(f *testing.F) {
	f.Add([]byte{0x08, 0x05})
	f.Add(marshal(&runlogv1.HistoryRow{Step: -7, Items: []*runlogv1.Item{dbl("a", 1)}}))
	f.Add([]byte{0x08, 0x05, 0x0a, 0x00})
	f.Fuzz(func(t *testing.T, p []byte) {
		step, err := Step(p)
		var row runlogv1.HistoryRow
		var rw runlogv1.Rewind
		rowErr, rwErr := proto.Unmarshal(p, &row), proto.Unmarshal(p, &rw)
		if err != nil && (rowErr == nil || rwErr == nil) {
			t.Fatalf("Step failed (%v) where the decoder did not", err)
		}
		if rowErr == nil && step != row.Step || rwErr == nil && step != rw.Step {
			t.Fatalf("step %d; row %d (%v), rewind %d (%v)", step, row.Step, rowErr, rw.Step, rwErr)
		}
	})
}

// FuzzRow: what SplitRow and ItemsOK take decodes, with the same step and
// items as SplitItem and ParseValue read them.
func FuzzRow(f *testing.F) {
	f.Add(marshal(&runlogv1.HistoryRow{Step: 3, Items: []*runlogv1.Item{dbl("a", 1), dbl("b", math.Inf(1))}}))
	f.Add(marshal(&runlogv1.HistoryRow{Items: []*runlogv1.Item{{Key: "j", Value: &runlogv1.Value{Kind: &runlogv1.Value_JsonValue{JsonValue: []byte("{}")}}}}}))
	f.Add([]byte{0x08, 0x01, 0x12, 0x03, 0x0a, 0x01, 0xff})
	f.Fuzz(func(t *testing.T, p []byte) {
		step, items, ok := SplitRow(p)
		if !ok || !ItemsOK(items, HistoryItems) {
			return
		}
		var row runlogv1.HistoryRow
		if err := proto.Unmarshal(p, &row); err != nil {
			t.Fatalf("row taken by the fast path does not decode: %v", err)
		}
		if step != row.Step {
			t.Fatalf("step %d, decoded %d", step, row.Step)
		}
		i := 0
		for s := NewScanner(items); s.Next(); i++ {
			key, val, ok := SplitItem(s.Bytes())
			v, vok := ParseValue(val)
			if !ok || !vok {
				t.Fatalf("ItemsOK took item %d, SplitItem %v, ParseValue %v", i, ok, vok)
			}
			if i >= len(row.Items) {
				t.Fatalf("more items than decoded (%d)", len(row.Items))
			}
			checkItem(t, row.Items[i], key, val, v)
		}
		if i != len(row.Items) {
			t.Fatalf("%d items, decoded %d", i, len(row.Items))
		}
	})
}

// FuzzItem: what SplitItem and ParseValue take decodes to the same item.
func FuzzItem(f *testing.F) {
	f.Add(marshal(dbl("loss", 0.25)))
	f.Add(marshal(&runlogv1.Item{Key: "b", Value: &runlogv1.Value{Kind: &runlogv1.Value_BoolValue{BoolValue: true}}}))
	f.Add(marshal(&runlogv1.Item{Key: "s", Value: &runlogv1.Value{Kind: &runlogv1.Value_StringValue{StringValue: "v"}}}))
	f.Add([]byte{0x0a, 0x01, 'k', 0x12, 0x02, 0x18, 0x05})
	f.Fuzz(func(t *testing.T, p []byte) {
		key, val, ok := SplitItem(p)
		if !ok {
			return
		}
		v, ok := ParseValue(val)
		if !ok {
			return
		}
		var it runlogv1.Item
		if err := proto.Unmarshal(p, &it); err != nil {
			t.Fatalf("item taken by the fast path does not decode: %v", err)
		}
		checkItem(t, &it, key, val, v)
		if got := ItemsOK(appendLen([]byte{byte(HistoryItems)<<3 | 2}, p), HistoryItems); !got {
			t.Fatal("ItemsOK refuses an item SplitItem and ParseValue take")
		}
	})
}

// FuzzUpdate: the removes SplitUpdate finds are the decoder's.
func FuzzUpdate(f *testing.F) {
	f.Add(marshal(&runlogv1.ConfigUpdate{Set: []*runlogv1.Item{dbl("a", 1)}, Remove: []string{"x", "y"}}))
	f.Add([]byte{0x12, 0x01, 'x', 0x0a, 0x00})
	f.Fuzz(func(t *testing.T, p []byte) {
		set, remove, ok := SplitUpdate(p)
		if !ok {
			return
		}
		var u runlogv1.ConfigUpdate
		if err := proto.Unmarshal(p, &u); err != nil {
			if len(set) == 0 {
				t.Fatalf("removes taken by the fast path do not decode: %v", err)
			}
			return // a set item the caller checks is bad
		}
		var got []string
		for s := NewScanner(remove); s.Next(); {
			got = append(got, string(s.Bytes()))
		}
		if len(got) != len(u.Remove) {
			t.Fatalf("removes %q, decoded %q", got, u.Remove)
		}
		for i := range got {
			if got[i] != u.Remove[i] {
				t.Fatalf("removes %q, decoded %q", got, u.Remove)
			}
		}
		n := 0
		for s := NewScanner(set); s.Next(); {
			n++
		}
		if n != len(u.Set) {
			t.Fatalf("%d set items, decoded %d", n, len(u.Set))
		}
	})
}

// FuzzUnframe: Unframe takes a value exactly when its first four bytes are
// the CRC-32C of the rest, and AppendFrame writes such values.
func FuzzUnframe(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0})
	f.Add(AppendFrame(nil, []byte("123456789")))
	f.Fuzz(func(t *testing.T, v []byte) {
		rec, err := Unframe(v)
		good := len(v) >= 4 && binary.BigEndian.Uint32(v) == crc32.Checksum(v[4:], crc32.MakeTable(crc32.Castagnoli))
		if (err == nil) != good {
			t.Fatalf("Unframe error %v, checksum good %v", err, good)
		}
		if good && !bytes.Equal(rec, v[4:]) {
			t.Fatal("record is not the bytes after the checksum")
		}
		rec, err = Unframe(AppendFrame(nil, v))
		if err != nil || !bytes.Equal(rec, v) {
			t.Fatalf("round trip: %x, %v", rec, err)
		}
	})
}

func checkItem(t *testing.T, it *runlogv1.Item, key, val []byte, v Value) {
	t.Helper()
	if string(key) != it.Key {
		t.Fatalf("key %q, decoded %q", key, it.Key)
	}
	if (val == nil) != (it.Value == nil) {
		t.Fatalf("value present %v, decoded %v", val != nil, it.Value)
	}
	var want Value
	switch k := it.GetValue().GetKind().(type) {
	case *runlogv1.Value_DoubleValue:
		want = Value{Field: ValueDouble, X: math.Float64bits(k.DoubleValue)}
	case *runlogv1.Value_IntValue:
		want = Value{Field: ValueInt, X: uint64(k.IntValue)}
	case *runlogv1.Value_BoolValue:
		want = Value{Field: ValueBool}
		if k.BoolValue {
			want.X = 1
		}
	case *runlogv1.Value_StringValue:
		want = Value{Field: ValueString, B: []byte(k.StringValue)}
	case *runlogv1.Value_JsonValue:
		want = Value{Field: ValueJSON, B: k.JsonValue}
	}
	if v.Field != want.Field || v.X != want.X || !bytes.Equal(v.B, want.B) {
		t.Fatalf("value %+v, decoded %+v", v, want)
	}
}

// appendLen appends a length-delimited value.
func appendLen(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// payloadTag appends the tag of kind k's payload field.
func payloadTag(b []byte, k Kind) []byte {
	return binary.AppendUvarint(b, uint64(k.Field())<<3|2)
}

package mux

import (
	"bytes"
	"errors"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wire"
)

func testService() *Service {
	return &Service{schema: newSchema(), maxRecord: DefaultMaxRecordBytes}
}

func TestCheckRecordStripsHeader(t *testing.T) {
	s := testService()
	r := &runlogv1.Record{
		Seq: 7, Id: []byte("0123456789abcdef"), TimeUnixNano: 99, ClientId: "spoof", ClientSeq: 3, Synthesized: true,
		Payload: &runlogv1.Record_Summary{Summary: &runlogv1.SummaryUpdate{Set: []*runlogv1.Item{
			{Key: "k", Value: &runlogv1.Value{Kind: &runlogv1.Value_StringValue{StringValue: "v"}}}}}},
	}
	raw, _ := proto.Marshal(r)
	c, err := s.checkRecord(raw)
	if err != nil {
		t.Fatal(err)
	}
	if c.clientSeq != 3 || c.payload != wire.KindSummary {
		t.Fatalf("checked %+v", c)
	}
	var got runlogv1.Record
	if err := proto.Unmarshal(c.body, &got); err != nil {
		t.Fatal(err)
	}
	want := &runlogv1.Record{Payload: r.Payload}
	if !proto.Equal(&got, want) {
		t.Fatalf("body decodes to %v, want %v", &got, want)
	}

	// Header fields first, as encoders write them: the body is the rest of
	// the record, not a copy.
	r = &runlogv1.Record{ClientSeq: 4, Payload: &runlogv1.Record_Rewind{Rewind: &runlogv1.Rewind{Step: 12}}}
	raw, _ = proto.Marshal(r)
	c, err = s.checkRecord(raw)
	if err != nil || c.step != 12 || c.payload != wire.KindRewind {
		t.Fatalf("checked %+v, %v", c, err)
	}
	if &c.body[0] != &raw[2] {
		t.Fatal("body was copied although the header was a prefix")
	}

	// A header field after the payload is stripped too.
	payload, _ := proto.Marshal(&runlogv1.Record{Payload: r.Payload})
	raw = protowire.AppendTag(append([]byte(nil), payload...), wire.RecordClientSeq, protowire.VarintType)
	raw = protowire.AppendVarint(raw, 5)
	c, err = s.checkRecord(raw)
	if err != nil || c.clientSeq != 5 || !bytes.Equal(c.body, payload) {
		t.Fatalf("checked %+v, %v; want the payload alone", c, err)
	}
}

func TestCheckRecordKeepsUnknownFields(t *testing.T) {
	s := testService()
	raw, _ := proto.Marshal(&runlogv1.Record{ClientSeq: 1, Payload: &runlogv1.Record_Alert{Alert: &runlogv1.Alert{Title: "t"}}})
	raw = protowire.AppendTag(raw, 99, protowire.VarintType)
	raw = protowire.AppendVarint(raw, 5)
	c, err := s.checkRecord(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.body, raw[2:]) {
		t.Fatal("unknown field dropped")
	}
}

func TestCheckRecordWireTypes(t *testing.T) {
	s := testService()
	// history.step sent as a string: the decoder would keep it as an unknown
	// field; the service refuses it instead of writing a row without a step.
	var row []byte
	row = protowire.AppendTag(row, wire.HistoryStep, protowire.BytesType)
	row = protowire.AppendString(row, "5")
	var rec []byte
	rec = protowire.AppendTag(rec, wire.RecordClientSeq, protowire.VarintType)
	rec = protowire.AppendVarint(rec, 1)
	rec = protowire.AppendTag(rec, wire.RecordHistory, protowire.BytesType)
	rec = protowire.AppendBytes(rec, row)
	_, err := s.checkRecord(rec)
	var inv *InvalidError
	if !errors.As(err, &inv) || !bytes.Contains([]byte(inv.Message), []byte("history.step has wire type 2")) {
		t.Fatalf("err = %v", err)
	}
	// Packed repeated scalars are fine where a list is declared (none of the
	// record's lists are scalars, so check the decoder path on tags: a
	// repeated string).
	info := &runlogv1.RunInfo{Tags: []string{"a", "b"}}
	raw, _ := proto.Marshal(&runlogv1.Record{ClientSeq: 2, Payload: &runlogv1.Record_Run{Run: info}})
	if _, err := s.checkRecord(raw); err != nil {
		t.Fatal(err)
	}
}

// FuzzCheckRecord: whatever the check accepts decodes, has exactly one
// payload and no header fields, as wal.AppendEncoded requires.
func FuzzCheckRecord(f *testing.F) {
	seeds := []*runlogv1.Record{
		{ClientSeq: 1, Payload: &runlogv1.Record_History{History: &runlogv1.HistoryRow{Step: 3, Items: []*runlogv1.Item{
			{Key: "a", Value: &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: 1}}},
			{Key: "b", Value: &runlogv1.Value{Kind: &runlogv1.Value_JsonValue{JsonValue: []byte("[1]")}}}}}}},
		{ClientSeq: 2, Seq: 9, Payload: &runlogv1.Record_Config{Config: &runlogv1.ConfigUpdate{Remove: []string{"x"}}}},
		{ClientSeq: 3, Payload: &runlogv1.Record_Run{Run: &runlogv1.RunInfo{Project: "p", Tags: []string{"t"}}}},
		{ClientSeq: 4, Payload: &runlogv1.Record_File{File: &runlogv1.FileRef{Path: "f", Sha256: []byte{1}}}},
		{ClientSeq: 5, Payload: &runlogv1.Record_Metric{Metric: &runlogv1.MetricDefinition{Name: "m", Goal: 2}}},
		{ClientSeq: 6, Payload: &runlogv1.Record_Stats{Stats: &runlogv1.SystemStats{Items: []*runlogv1.Item{
			{Key: "cpu", Value: &runlogv1.Value{Kind: &runlogv1.Value_IntValue{IntValue: -3}}}}}}},
	}
	for _, r := range seeds {
		b, _ := proto.Marshal(r)
		f.Add(b)
	}
	s := testService()
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := s.checkRecord(raw)
		if err != nil {
			return
		}
		var r runlogv1.Record
		if err := proto.Unmarshal(c.body, &r); err != nil {
			t.Fatalf("accepted record does not decode: %v", err)
		}
		if r.Payload == nil || r.GetExit() != nil {
			t.Fatalf("accepted record has payload %T", r.Payload)
		}
		payloads := 0
		sc := wire.NewScanner(c.body)
		for sc.Next() {
			if wire.IsHeader(sc.Num()) {
				t.Fatalf("accepted body keeps header field %d", sc.Num())
			}
			if wire.KindOfField(sc.Num()) != wire.KindNone {
				payloads++
			}
		}
		if sc.Err() != nil {
			t.Fatal("accepted body is malformed")
		}
		if payloads != 1 {
			t.Fatalf("accepted body has %d payload fields", payloads)
		}
		if c.clientSeq == 0 {
			t.Fatal("accepted a record without client_seq")
		}
		if h := r.GetHistory(); h != nil && (h.Step != c.step || h.Step < 0) {
			t.Fatalf("step %d, checked %d", h.Step, c.step)
		}
	})
}

func BenchmarkCheckRecord(b *testing.B) {
	s := testService()
	items := make([]*runlogv1.Item, 10)
	for i := range items {
		items[i] = &runlogv1.Item{Key: "metric/" + string(rune('a'+i)), Value: &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: float64(i)}}}
	}
	raw, _ := proto.Marshal(&runlogv1.Record{ClientSeq: 12345, Payload: &runlogv1.Record_History{History: &runlogv1.HistoryRow{Step: 777, Items: items}}})
	b.ReportAllocs()
	for range b.N {
		if _, err := s.checkRecord(raw); err != nil {
			b.Fatal(err)
		}
	}
}

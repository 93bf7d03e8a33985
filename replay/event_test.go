package replay

import (
	"bytes"
	"fmt"
	"math"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wal"
	"github.com/runlog/runlog/wal/waltest"
	"github.com/runlog/runlog/wire"
)

// variedLog is a log with every kind of record, rewinds and irregular steps.
func variedLog(t testing.TB) *wal.Log {
	l := waltest.Open(t)
	app := func(recs ...*runlogv1.Record) {
		t.Helper()
		if err := l.Append(recs); err != nil {
			t.Fatal(err)
		}
	}
	app(&runlogv1.Record{Payload: &runlogv1.Record_Run{Run: &runlogv1.RunInfo{Project: "p", Name: "n", Tags: []string{"a"}, StartTimeUnixNano: 42}}},
		&runlogv1.Record{Payload: &runlogv1.Record_Config{Config: &runlogv1.ConfigUpdate{Set: []*runlogv1.Item{item("lr", dbl(0.1)), item("bs", i64(32))}}}})
	app(waltest.History(0, 100, 3)...)
	app(rewindRec(40))
	app(waltest.History(40, 30, 2)...)
	for i := range 50 {
		app(&runlogv1.Record{Payload: &runlogv1.Record_History{History: &runlogv1.HistoryRow{Step: 100 + int64(i*i), Items: []*runlogv1.Item{item("x", str("ünï"))}}}})
	}
	app(&runlogv1.Record{Payload: &runlogv1.Record_Stats{Stats: &runlogv1.SystemStats{Items: []*runlogv1.Item{item("cpu", dbl(0.5)), item("mem", i64(1<<33))}}}},
		&runlogv1.Record{Payload: &runlogv1.Record_Stats{Stats: &runlogv1.SystemStats{}}},
		&runlogv1.Record{Payload: &runlogv1.Record_Output{Output: &runlogv1.ConsoleOutput{Stream: runlogv1.ConsoleOutput_STREAM_STDERR, Text: "hello\n"}}},
		&runlogv1.Record{Payload: &runlogv1.Record_File{File: &runlogv1.FileRef{Path: "model.pt", Size: 10}}},
		&runlogv1.Record{Payload: &runlogv1.Record_Metric{Metric: &runlogv1.MetricDefinition{Name: "loss", Goal: runlogv1.MetricDefinition_GOAL_MINIMIZE}}},
		&runlogv1.Record{Payload: &runlogv1.Record_Alert{Alert: &runlogv1.Alert{Title: "t"}}},
		&runlogv1.Record{Payload: &runlogv1.Record_Summary{Summary: &runlogv1.SummaryUpdate{Set: []*runlogv1.Item{item("best", dbl(0.9))}}}},
		&runlogv1.Record{Payload: &runlogv1.Record_Config{Config: &runlogv1.ConfigUpdate{Remove: []string{"bs"}}}},
		&runlogv1.Record{Payload: &runlogv1.Record_Run{Run: &runlogv1.RunInfo{Name: "renamed"}}},
		&runlogv1.Record{},
		&runlogv1.Record{Synthesized: true, Payload: &runlogv1.Record_Exit{Exit: &runlogv1.Exit{Code: 137, Reason: runlogv1.ExitReason_EXIT_REASON_CRASHED, Message: "gone"}}})
	return l
}

// sameState fails unless a and b are the same state.
func sameState(t testing.TB, what string, a, b *State) {
	t.Helper()
	x, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	y, err := b.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Fatalf("%s: state differs:\n%v\n%v", what, a.Proto(), b.Proto())
	}
}

// TestApplyEncodedEqualsApply holds the encoded paths (DecodeEvent with
// ApplyEvent, ApplyEncoded, Fold) to Apply on the decoded record, record by
// record and for the whole run.
func TestApplyEncodedEqualsApply(t *testing.T) {
	l := variedLog(t)
	full, ev, enc := NewState("r"), NewState("r"), NewState("r")
	fast := map[Kind]int{}
	err := l.Scan(1, func(seq uint64, data []byte) error {
		var r runlogv1.Record
		if err := proto.Unmarshal(data, &r); err != nil {
			return err
		}
		e, err := DecodeEvent(data)
		if err != nil {
			return fmt.Errorf("seq %d: %w", seq, err)
		}
		if e.Seq() != r.GetSeq() || e.Kind() != KindOf(&r) {
			return fmt.Errorf("seq %d: event says seq %d kind %v, decode says %d %v", seq, e.Seq(), e.Kind(), r.GetSeq(), KindOf(&r))
		}
		if e.rec == nil {
			fast[e.Kind()]++
		}
		full.Apply(&r)
		ev.ApplyEvent(&e)
		if err := enc.ApplyEncoded(data); err != nil {
			return fmt.Errorf("seq %d: %w", seq, err)
		}
		sameState(t, fmt.Sprintf("seq %d event", seq), full, ev)
		sameState(t, fmt.Sprintf("seq %d encoded", seq), full, enc)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The point of the fast path: rows and stats as encoders write them
	// never build their items.
	if fast[KindHistory] != 180 || fast[KindStats] != 2 || len(fast) != 2 {
		t.Fatalf("fast path taken for %v, want 180 history and 2 stats records", fast)
	}
	folded, err := Fold(l, "r", 0)
	if err != nil {
		t.Fatal(err)
	}
	sameState(t, "Fold", full, folded)
}

// Encoding helpers for records no encoder writes.
func bytesField(num protowire.Number, v []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
}

func varint(num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func rawItem(key string, val []byte) []byte {
	return cat(bytesField(wire.ItemKey, []byte(key)), bytesField(wire.ItemValue, val))
}

func rawDouble(v float64) []byte {
	return protowire.AppendFixed64(protowire.AppendTag(nil, wire.ValueDouble, protowire.Fixed64Type), math.Float64bits(v))
}

// TestDecodeEventUnusualRecords checks records the fast path must leave to
// the decoder: those the decoder refuses fail, the others fold as Apply
// folds their decoding.
func TestDecodeEventUnusualRecords(t *testing.T) {
	head := cat(varint(wire.RecordSeq, 7), varint(wire.RecordTime, 99))
	row := func(parts ...[]byte) []byte { return cat(head, bytesField(wire.RecordHistory, cat(parts...))) }
	stats := func(parts ...[]byte) []byte { return cat(head, bytesField(wire.RecordStats, cat(parts...))) }
	ok := rawItem("loss", rawDouble(0.5))
	cases := []struct {
		name  string
		data  []byte
		valid bool
	}{
		{"canonical row", row(varint(wire.HistoryStep, 5), bytesField(wire.HistoryItems, ok)), true},
		{"step after the items", row(bytesField(wire.HistoryItems, ok), varint(wire.HistoryStep, 5)), true},
		{"step twice", row(varint(wire.HistoryStep, 5), varint(wire.HistoryStep, 6), bytesField(wire.HistoryItems, ok)), true},
		{"unknown field in a row", row(varint(wire.HistoryStep, 5), varint(9, 1), bytesField(wire.HistoryItems, ok)), true},
		{"item with two values", row(varint(wire.HistoryStep, 5), bytesField(wire.HistoryItems, cat(ok, bytesField(wire.ItemValue, rawDouble(1))))), true},
		{"two history payloads merge", cat(row(varint(wire.HistoryStep, 5)), bytesField(wire.RecordHistory, varint(wire.HistoryStep, 8))), true},
		{"stats then history", cat(stats(bytesField(wire.StatsItems, ok)), bytesField(wire.RecordHistory, varint(wire.HistoryStep, 8))), true},
		{"unknown top-level field", cat(row(varint(wire.HistoryStep, 5)), varint(99, 1)), true},
		// A known field of another wire type is an unknown field to the
		// decoder: an exit sent as a varint ends nothing, a seq sent as
		// bytes leaves the seq as it was.
		{"exit as a varint", cat(row(varint(wire.HistoryStep, 5)), varint(wire.RecordExit, 0x30)), true},
		{"seq as bytes", cat(row(varint(wire.HistoryStep, 5)), bytesField(wire.RecordSeq, []byte{9})), true},
		{"history as a varint", cat(stats(bytesField(wire.StatsItems, ok)), varint(wire.RecordHistory, 1)), true},
		{"invalid UTF-8 key", row(varint(wire.HistoryStep, 5), bytesField(wire.HistoryItems, rawItem("\xff", rawDouble(1)))), false},
		{"invalid UTF-8 string value", row(varint(wire.HistoryStep, 5), bytesField(wire.HistoryItems, rawItem("k", bytesField(wire.ValueString, []byte("\xfe"))))), false},
		{"invalid UTF-8 stats key", stats(bytesField(wire.StatsItems, rawItem("c\xc3", rawDouble(1)))), false},
		{"invalid UTF-8 client id", cat(bytesField(wire.RecordClientID, []byte("\xff")), row(varint(wire.HistoryStep, 5))), false},
		{"truncated item", row(varint(wire.HistoryStep, 5), bytesField(wire.HistoryItems, ok[:len(ok)-2])), false},
		{"field number out of range", row(varint(wire.HistoryStep, 5), varint(protowire.MaxValidNumber+1, 1)), false},
		{"stats item out of range", stats(bytesField(wire.StatsItems, varint(protowire.MaxValidNumber+1, 1))), false},
		{"truncated record", row(varint(wire.HistoryStep, 5), bytesField(wire.HistoryItems, ok))[:20], false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := checkEncoded(t, c.data); got != c.valid {
				t.Fatalf("the record decodes: %v; the test case says %v", got, c.valid)
			}
		})
	}
}

// checkEncoded holds every encoded path (DecodeEvent with ApplyEvent,
// ApplyEncoded, Fold) to the decoder for one record: they fail exactly when
// proto.Unmarshal fails, leaving the state as it was, and otherwise fold to
// the state Apply gives the decoding. It returns whether the record decodes.
func checkEncoded(t *testing.T, data []byte) bool {
	t.Helper()
	var r runlogv1.Record
	derr := proto.Unmarshal(data, &r)
	e, err := DecodeEvent(data)
	folded, ferr := Fold(rawSource{data}, "r", 0)
	enc := NewState("r")
	eerr := enc.ApplyEncoded(data)
	if derr != nil {
		if err == nil || ferr == nil || eerr == nil {
			t.Fatalf("decode fails (%v), DecodeEvent says %v, Fold %v, ApplyEncoded %v", derr, err, ferr, eerr)
		}
		sameState(t, "after a refused record", NewState("r"), enc)
		return false
	}
	if err != nil || ferr != nil || eerr != nil {
		t.Fatalf("decode works, DecodeEvent says %v, Fold %v, ApplyEncoded %v", err, ferr, eerr)
	}
	want := NewState("r")
	want.Apply(&r)
	got := NewState("r")
	got.ApplyEvent(&e)
	sameState(t, "event", want, got)
	sameState(t, "encoded", want, enc)
	sameState(t, "fold", want, folded)
	return true
}

// FuzzApplyEncoded runs checkEncoded on any input.
func FuzzApplyEncoded(f *testing.F) {
	for _, r := range jsonRecords() {
		b, _ := proto.Marshal(r)
		f.Add(b)
	}
	l := variedLog(f)
	l.Scan(1, func(seq uint64, data []byte) error {
		if seq%7 == 0 || seq < 5 || seq > 180 {
			f.Add(append([]byte(nil), data...))
		}
		return nil
	})
	f.Fuzz(func(t *testing.T, data []byte) { checkEncoded(t, data) })
}

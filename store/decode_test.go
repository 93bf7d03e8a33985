package store

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/replay"
	"github.com/runlog/runlog/wal"
	"github.com/runlog/runlog/wal/waltest"
)

func dbl(k string, v float64) *runlogv1.Item {
	return &runlogv1.Item{Key: k, Value: &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: v}}}
}

// variedRun is a log with every kind of record, rewinds and irregular steps.
func variedRun(t testing.TB) *wal.Log {
	l, err := wal.Open(filepath.Join(t.TempDir(), "wal.bolt"), wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	app := func(recs ...*runlogv1.Record) {
		t.Helper()
		if err := l.Append(recs); err != nil {
			t.Fatal(err)
		}
	}
	app(&runlogv1.Record{Payload: &runlogv1.Record_Run{Run: &runlogv1.RunInfo{Project: "p", Name: "n", Tags: []string{"a"}, StartTimeUnixNano: 42}}},
		&runlogv1.Record{Payload: &runlogv1.Record_Config{Config: &runlogv1.ConfigUpdate{Set: []*runlogv1.Item{dbl("lr", 0.1), dbl("bs", 32)}}}})
	app(waltest.History(0, 100, 3)...)
	app(&runlogv1.Record{Payload: &runlogv1.Record_Rewind{Rewind: &runlogv1.Rewind{Step: 40}}})
	app(waltest.History(40, 30, 2)...)
	for i := range 50 {
		app(&runlogv1.Record{Payload: &runlogv1.Record_History{History: &runlogv1.HistoryRow{Step: 100 + int64(i*i), Items: []*runlogv1.Item{dbl("x", 1)}}}})
	}
	app(&runlogv1.Record{Payload: &runlogv1.Record_Stats{Stats: &runlogv1.SystemStats{Items: []*runlogv1.Item{dbl("cpu", 0.5)}}}},
		&runlogv1.Record{Payload: &runlogv1.Record_Output{Output: &runlogv1.ConsoleOutput{Stream: runlogv1.ConsoleOutput_STREAM_STDERR, Text: "hello\n"}}},
		&runlogv1.Record{Payload: &runlogv1.Record_File{File: &runlogv1.FileRef{Path: "model.pt", Size: 10}}},
		&runlogv1.Record{Payload: &runlogv1.Record_Metric{Metric: &runlogv1.MetricDefinition{Name: "loss", Goal: runlogv1.MetricDefinition_GOAL_MINIMIZE}}},
		&runlogv1.Record{Payload: &runlogv1.Record_Alert{Alert: &runlogv1.Alert{Title: "t"}}},
		&runlogv1.Record{Payload: &runlogv1.Record_Summary{Summary: &runlogv1.SummaryUpdate{Set: []*runlogv1.Item{dbl("best", 0.9)}}}},
		&runlogv1.Record{Payload: &runlogv1.Record_Config{Config: &runlogv1.ConfigUpdate{Remove: []string{"bs"}}}},
		&runlogv1.Record{Payload: &runlogv1.Record_Run{Run: &runlogv1.RunInfo{Name: "renamed"}}},
		&runlogv1.Record{},
		&runlogv1.Record{Synthesized: true, Payload: &runlogv1.Record_Exit{Exit: &runlogv1.Exit{Code: 137, Reason: runlogv1.ExitReason_EXIT_REASON_CRASHED, Message: "gone"}}})
	return l
}

// TestFoldRecordMatchesFullDecode holds the store's shortcut decode to the
// fold of a full decode, record by record and for the whole run.
func TestFoldRecordMatchesFullDecode(t *testing.T) {
	l := variedRun(t)
	full, short := replay.NewState("r"), replay.NewState("r")
	err := l.Scan(1, func(seq uint64, data []byte) error {
		var r runlogv1.Record
		if err := proto.Unmarshal(data, &r); err != nil {
			return err
		}
		s, err := foldRecord(data)
		if err != nil {
			return fmt.Errorf("seq %d: %w", seq, err)
		}
		if replay.KindOf(s) != replay.KindOf(&r) || s.GetSeq() != r.GetSeq() || s.GetTimeUnixNano() != r.GetTimeUnixNano() {
			return fmt.Errorf("seq %d: kind %v seq %d time %d, full decode says %v %d %d",
				seq, replay.KindOf(s), s.GetSeq(), s.GetTimeUnixNano(), replay.KindOf(&r), r.GetSeq(), r.GetTimeUnixNano())
		}
		full.Apply(&r)
		short.Apply(s)
		a, _ := full.MarshalBinary()
		b, _ := short.MarshalBinary()
		if !bytes.Equal(a, b) {
			return fmt.Errorf("seq %d: state differs:\nfull  %v\nshort %v", seq, full.Proto(), short.Proto())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	folded, err := replay.Fold(l, "r", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(folded.Proto(), short.Proto()) {
		t.Fatalf("store fold differs from replay.Fold:\n%v\n%v", folded.Proto(), short.Proto())
	}
}

// FuzzFoldRecord checks that whatever a full decode accepts, the shortcut
// accepts too, with the same fold.
func FuzzFoldRecord(f *testing.F) {
	l := variedRun(f)
	l.Scan(1, func(seq uint64, data []byte) error {
		if seq%7 == 0 || seq < 5 || seq > 200 {
			f.Add(append([]byte(nil), data...))
		}
		return nil
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		var r runlogv1.Record
		if proto.Unmarshal(data, &r) != nil {
			return
		}
		s, err := foldRecord(data)
		if err != nil {
			t.Fatalf("full decode accepts, shortcut says %v", err)
		}
		a, b := replay.NewState("r"), replay.NewState("r")
		a.Apply(&r)
		b.Apply(s)
		x, _ := a.MarshalBinary()
		y, _ := b.MarshalBinary()
		if !bytes.Equal(x, y) {
			t.Fatalf("fold differs:\n%v\n%v", a.Proto(), b.Proto())
		}
	})
}

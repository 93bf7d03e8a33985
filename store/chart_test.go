package store_test

import (
	"context"
	"testing"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/rollup"
	"github.com/runlog/runlog/store"
	"github.com/runlog/runlog/store/storetest"
)

func TestChartFromTiers(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := storetest.OpenDir(t, dir)
	recs := storetest.Records(t, storetest.Run{Rows: 50000, Keys: 3})
	// In several appends, so that the partial blocks cross commits, and
	// across a reopen, so that they are read back from disk.
	for i := 0; i < 28000; i += 7000 {
		if _, err := s.Append(ctx, "r", recs[i:i+7000]); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = storetest.OpenDir(t, dir)
	if _, err := s.Append(ctx, "r", recs[28000:]); err != nil {
		t.Fatal(err)
	}
	check := func(s *store.Bolt) {
		t.Helper()
		res, err := s.Chart(ctx, "r", rollup.Query{Points: 400})
		if err != nil {
			t.Fatal(err)
		}
		if res.Level < 0 || len(res.Series) != 3 || res.FirstStep != 0 || res.LastStep != 49999 {
			t.Fatalf("level %d, %d series, steps %d..%d", res.Level, len(res.Series), res.FirstStep, res.LastStep)
		}
		m2 := res.Series["metric/1"]
		if last := m2.Values[len(m2.Values)-1]; last != 49999*2 {
			t.Fatalf("metric/1 ends at %v, want %v", last, 49999*2)
		}
		// A zoom into 300 steps is answered row by row.
		res, err = s.Chart(ctx, "r", rollup.Query{Points: 400, MinStep: 1000, MaxStep: 1299, HasMin: true, HasMax: true, Keys: []string{"metric/0"}})
		if err != nil {
			t.Fatal(err)
		}
		m0 := res.Series["metric/0"]
		if !res.Exact || len(m0.Steps) != 300 || m0.Steps[0] != 1000 || m0.Values[299] != 1299 || len(res.Series) != 1 {
			t.Fatalf("zoom: exact %v, %d points", res.Exact, len(m0.Steps))
		}
	}
	check(s)
	res, err := s.Chart(ctx, "r", rollup.Query{Points: 100, MinStep: 49950, HasMin: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.Series["metric/2"].Steps); n != 50 {
		t.Fatalf("tail: %d points, want 50", n)
	}
}

func TestChartAfterRewindReadsRecords(t *testing.T) {
	ctx := context.Background()
	s := storetest.Open(t)
	recs := storetest.Records(t, storetest.Run{Rows: 100, Keys: 2})
	seq := uint64(len(recs))
	seq++
	recs = append(recs, mustMarshal(t, &runlogv1.Record{Seq: seq, Payload: &runlogv1.Record_Rewind{Rewind: &runlogv1.Rewind{Step: 50}}}))
	for step := int64(50); step < 60; step++ {
		seq++
		recs = append(recs, mustMarshal(t, &runlogv1.Record{Seq: seq, Payload: &runlogv1.Record_History{History: &runlogv1.HistoryRow{
			Step:  step,
			Items: []*runlogv1.Item{{Key: "metric/0", Value: &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: -1}}}},
		}}}))
	}
	if _, err := s.Append(ctx, "r", recs); err != nil {
		t.Fatal(err)
	}
	res, err := s.Chart(ctx, "r", rollup.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.Series["metric/0"].Steps); n != 60 || res.Series["metric/0"].Values[59] != -1 {
		t.Fatalf("metric/0: %d points, want the 60 live rows", n)
	}
	if n := len(res.Series["metric/1"].Steps); n != 50 {
		t.Fatalf("metric/1: %d points, want 50", n)
	}
}

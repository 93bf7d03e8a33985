package replay

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wal/waltest"
	"github.com/runlog/runlog/wire"
)

// sliceSource is a Source over records held in memory.
type sliceSource []*runlogv1.Record

func (s sliceSource) Scan(from uint64, fn func(uint64, []byte) error) error {
	for _, r := range s {
		if r.Seq < from {
			continue
		}
		data, err := proto.Marshal(r)
		if err != nil {
			return err
		}
		if err := fn(r.Seq, data); err != nil {
			return err
		}
	}
	return nil
}

// liveRowsOf applies the definition to every row, for comparison.
func liveRowsOf(recs []*runlogv1.Record) []*runlogv1.Record {
	var out []*runlogv1.Record
	for i, r := range recs {
		h := r.GetHistory()
		if h == nil {
			continue
		}
		if !slices.ContainsFunc(recs[i+1:], func(l *runlogv1.Record) bool {
			return l.GetRewind() != nil && l.GetRewind().Step <= h.Step
		}) {
			out = append(out, r)
		}
	}
	return out
}

func TestHistoryHonoursRewinds(t *testing.T) {
	l := waltest.Open(t)
	rng := rand.New(rand.NewPCG(3, 4))
	recs := stepLog(rng, 2000, false)
	// Two keys on alternate rows so that a key filter skips rows.
	for _, r := range recs {
		if h := r.GetHistory(); h != nil && h.Step%2 == 0 {
			h.Items = append(h.Items, item("acc", dbl(float64(h.Step))))
		}
		r.Seq, r.TimeUnixNano = 0, 0
	}
	for i := 0; i < len(recs); i += 300 {
		if err := l.Append(recs[i:min(i+300, len(recs))]); err != nil {
			t.Fatal(err)
		}
	}
	if countKind(recs, KindRewind) < 5 {
		t.Fatalf("test log has too few rewinds to mean anything")
	}
	for _, to := range []uint64{0, 1, 500, 1234, uint64(len(recs))} {
		prefix := recs
		if to != 0 {
			prefix = recs[:to]
		}
		want := liveRowsOf(prefix)
		var got []Row
		if err := History(l, HistoryOptions{To: to}, func(r Row) error { got = append(got, r); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("to %d: %d rows, want %d", to, len(got), len(want))
		}
		for i := range got {
			if got[i].Seq != want[i].Seq || got[i].Step != want[i].GetHistory().Step || len(got[i].Items) != len(want[i].GetHistory().Items) {
				t.Fatalf("to %d row %d: seq %d step %d, want seq %d step %d", to, i, got[i].Seq, got[i].Step, want[i].Seq, want[i].GetHistory().Step)
			}
		}
		n, err := CountHistory(l, to)
		if err != nil || n != uint64(len(want)) {
			t.Fatalf("to %d: CountHistory = %d, %v, want %d", to, n, err, len(want))
		}
		// Folding the same prefix counts the same rows and ends at the same
		// step floor as the log itself.
		s, err := Fold(l, "r", to)
		if err != nil {
			t.Fatal(err)
		}
		if s.HistoryRows() != uint64(len(want)) {
			t.Fatalf("to %d: fold counts %d rows, want %d", to, s.HistoryRows(), len(want))
		}
		if to == 0 && s.LastStep() != l.LastStep() {
			t.Fatalf("fold step floor %d, log says %d", s.LastStep(), l.LastStep())
		}
	}

	// A key filter keeps only rows with the key, and only that key.
	var accRows int
	err := History(l, HistoryOptions{Keys: []string{"acc"}}, func(r Row) error {
		if len(r.Items) != 1 || r.Items[0].Key != "acc" || r.Step%2 != 0 {
			t.Fatalf("row at step %d has items %v", r.Step, r.Items)
		}
		accRows++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantAcc := 0
	for _, r := range liveRowsOf(recs) {
		if r.GetHistory().Step%2 == 0 {
			wantAcc++
		}
	}
	if accRows != wantAcc {
		t.Fatalf("%d rows with acc, want %d", accRows, wantAcc)
	}

	// fn's error stops the read and comes back.
	stop := errors.New("enough")
	if err := History(l, HistoryOptions{}, func(Row) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("History returned %v, want fn's error", err)
	}
}

func countKind(recs []*runlogv1.Record, k Kind) int {
	n := 0
	for _, r := range recs {
		if KindOf(r) == k {
			n++
		}
	}
	return n
}

func TestSample(t *testing.T) {
	var recs []*runlogv1.Record
	for i := range 1000 {
		recs = append(recs, histRec(int64(i)))
	}
	recs = append(recs, rewindRec(900)) // 900 live rows: steps 0..899
	stamp(recs)
	src := sliceSource(recs)
	for _, max := range []int{1, 2, 7, 100, 899, 900, 5000} {
		got, err := SampleHistory(src, HistoryOptions{Keys: []string{"loss"}}, max)
		if err != nil {
			t.Fatal(err)
		}
		wantN := min(max, 900)
		if len(got) != wantN {
			t.Fatalf("max %d: %d samples, want %d", max, len(got), wantN)
		}
		if got[len(got)-1].Step != 899 {
			t.Fatalf("max %d: last sample at step %d, want 899", max, got[len(got)-1].Step)
		}
		if max > 1 && got[0].Step != 0 {
			t.Fatalf("max %d: first sample at step %d, want 0", max, got[0].Step)
		}
		// Evenly spread: no gap between samples is more than twice the
		// ideal spacing plus one (the decimation rounds to powers of two).
		ideal := 900 / float64(wantN)
		for i := 1; i < len(got); i++ {
			if got[i].Step <= got[i-1].Step {
				t.Fatalf("max %d: samples out of order at %d", max, i)
			}
			if gap := float64(got[i].Step - got[i-1].Step); gap > 2*ideal+1 {
				t.Fatalf("max %d: gap %v between samples %d and %d, ideal %v", max, gap, i-1, i, ideal)
			}
		}
	}
	got, err := SampleHistory(src, HistoryOptions{Keys: []string{"nothing"}}, 10)
	if err != nil || len(got) != 0 {
		t.Fatalf("unknown key: %d samples, %v", len(got), err)
	}
	got, err = SampleHistory(src, HistoryOptions{To: 10}, 0)
	if err != nil || len(got) != 10 || got[9].Step != 9 {
		t.Fatalf("to 10: %d samples, %v", len(got), err)
	}
}

func TestPayloadOfAgreesWithDecode(t *testing.T) {
	recs := []*runlogv1.Record{
		histRec(-3), rewindRec(-7), {Seq: 5},
		{Seq: 9, ClientId: "c", Payload: &runlogv1.Record_Exit{Exit: &runlogv1.Exit{Code: 3}}},
		{Payload: &runlogv1.Record_Alert{Alert: &runlogv1.Alert{Title: "t"}}},
	}
	for _, r := range recs {
		data, _ := proto.Marshal(r)
		k, payload, err := payloadOf(data)
		if err != nil || k != KindOf(r) {
			t.Fatalf("%v: kind %v, %v, want %v", r, k, err, KindOf(r))
		}
		if k == KindHistory || k == KindRewind {
			step, err := wire.Step(payload)
			want := r.GetHistory().GetStep() + r.GetRewind().GetStep()
			if err != nil || step != want {
				t.Fatalf("%v: step %d, %v", r, step, err)
			}
		}
	}
	if _, _, err := payloadOf([]byte{0x62, 0x05, 0x08}); err == nil {
		t.Fatal("truncated payload accepted")
	}
}

// FuzzDecodeRowWire checks the history fast path against the decoder: the
// same items whenever it takes a row, and never a row the decoder refuses.
func FuzzDecodeRowWire(f *testing.F) {
	for _, r := range jsonRecords() {
		if h := r.GetHistory(); h != nil {
			b, _ := proto.Marshal(h)
			f.Add(b, "loss")
		}
		if c := r.GetConfig(); c != nil {
			b, _ := proto.Marshal(&runlogv1.HistoryRow{Step: 3, Items: c.Set})
			f.Add(b, "s")
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, key string) {
		for _, want := range []map[string]bool{nil, {key: true}} {
			items, ok := decodeRowWire(data, want)
			var h runlogv1.HistoryRow
			if err := proto.Unmarshal(data, &h); err != nil {
				if ok {
					t.Fatalf("decoder refuses the row (%v), the fast path took it", err)
				}
				return
			}
			if !ok {
				continue
			}
			var wantItems []*runlogv1.Item
			for _, it := range h.Items {
				if want == nil || want[it.GetKey()] {
					wantItems = append(wantItems, it)
				}
			}
			got := &runlogv1.HistoryRow{Items: items}
			if exp := (&runlogv1.HistoryRow{Items: wantItems}); !proto.Equal(got, exp) {
				t.Fatalf("keys %v:\n got %v\nwant %v", want, got, exp)
			}
		}
	})
}

func TestFoldEqualsApply(t *testing.T) {
	// Fold reads history rows without decoding them; the state must be the
	// one Apply builds from decoded records.
	rng := rand.New(rand.NewPCG(5, 6))
	recs := stepLog(rng, 3000, true)
	for i, r := range recs {
		switch i % 50 {
		case 1:
			r.Payload = &runlogv1.Record_Config{Config: &runlogv1.ConfigUpdate{Set: []*runlogv1.Item{item("k", i64(int64(i)))}}}
		case 2:
			r.ClientId = "c"
			r.Payload = &runlogv1.Record_Output{Output: &runlogv1.ConsoleOutput{Text: "x"}}
		}
	}
	src := sliceSource(recs)
	for _, to := range []uint64{0, 1, 999, 2500} {
		want := NewState("r")
		for _, r := range recs {
			if to != 0 && r.Seq > to {
				break
			}
			want.Apply(r)
		}
		got, err := Fold(src, "r", to)
		if err != nil {
			t.Fatal(err)
		}
		sameState(t, fmt.Sprintf("to %d: fold, apply", to), got, want)
	}
}

// rawSource is a Source over encoded records numbered from 1.
type rawSource [][]byte

func (s rawSource) Scan(from uint64, fn func(uint64, []byte) error) error {
	for i, data := range s {
		if uint64(i+1) < from {
			continue
		}
		if err := fn(uint64(i+1), data); err != nil {
			return err
		}
	}
	return nil
}

func TestHistoryStepRange(t *testing.T) {
	// Rows from step -2 (only a hand-made log has those) to 2999, with
	// rewinds that drop rows on both sides of every range below.
	var recs []*runlogv1.Record
	rows := func(from, to int64) {
		for s := from; s <= to; s++ {
			recs = append(recs, histRec(s))
		}
	}
	rows(-2, 1199)
	recs = append(recs, rewindRec(900))
	rows(900, 2199)
	recs = append(recs, rewindRec(1500))
	rows(1500, 2999)
	recs = append(recs, rewindRec(2500))
	l := waltest.Open(t)
	if err := l.Append(recs); err != nil {
		t.Fatal(err)
	}
	stamp(recs) // the seqs the log gave them
	last := int64(2499)
	cases := []struct {
		name string
		opts HistoryOptions
	}{
		{"everything", HistoryOptions{}},
		{"from a step", HistoryOptions{FromStep: last / 2}},
		{"up to a step", HistoryOptions{ToStep: last / 3, HasToStep: true}},
		{"up to step 0", HistoryOptions{ToStep: 0, HasToStep: true}},
		{"a window", HistoryOptions{FromStep: last / 3, ToStep: last / 2, HasToStep: true}},
		{"one step", HistoryOptions{FromStep: last / 4, ToStep: last / 4, HasToStep: true}},
		{"a window of a prefix", HistoryOptions{FromStep: 10, ToStep: last / 2, HasToStep: true, To: 1500}},
		{"beyond the last step", HistoryOptions{FromStep: last + 1}},
		{"an empty range", HistoryOptions{FromStep: 20, ToStep: 19, HasToStep: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := c.opts
			prefix := recs
			if o.To != 0 {
				prefix = recs[:o.To]
			}
			// The definition: live rows of the prefix, then the range.
			var want []*runlogv1.Record
			for _, r := range liveRowsOf(prefix) {
				s := r.GetHistory().Step
				if (o.FromStep <= 0 || s >= o.FromStep) && (!o.HasToStep || s <= o.ToStep) {
					want = append(want, r)
				}
			}
			var got []Row
			if err := History(l, o, func(r Row) error { got = append(got, r); return nil }); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d rows, want %d", len(got), len(want))
			}
			for i := range got {
				if got[i].Seq != want[i].Seq || got[i].Step != want[i].GetHistory().Step {
					t.Fatalf("row %d: seq %d step %d, want seq %d step %d", i, got[i].Seq, got[i].Step, want[i].Seq, want[i].GetHistory().Step)
				}
			}
			for _, max := range []int{1, 5, 64} {
				s, err := SampleHistory(l, o, max)
				if err != nil {
					t.Fatal(err)
				}
				if len(s) != min(max, len(want)) {
					t.Fatalf("max %d: %d samples of %d rows", max, len(s), len(want))
				}
				if len(s) == 0 {
					continue
				}
				// Samples are rows of the range, in order, ending with its
				// last row.
				j := 0
				for _, x := range s {
					for j < len(want) && want[j].GetHistory().Step != x.Step {
						j++
					}
					if j == len(want) {
						t.Fatalf("max %d: sample at step %d is not a row of the range, in order", max, x.Step)
					}
					j++
				}
				if end := want[len(want)-1].GetHistory().Step; s[len(s)-1].Step != end {
					t.Fatalf("max %d: last sample at step %d, want %d", max, s[len(s)-1].Step, end)
				}
			}
		})
	}
}

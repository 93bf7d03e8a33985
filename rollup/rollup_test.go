package rollup

import (
	"math"
	"testing"
)

type row struct {
	seq  uint64
	step int64
	vals []Value
}

func build(t *testing.T, n int) (*Mem, []row) {
	t.Helper()
	m := NewMem()
	var rows []row
	for i := 0; i < n; i++ {
		step := int64(i * 2)
		vals := []Value{{Key: "a", V: math.Sin(float64(i) / 100)}, {Key: "b", V: float64(i)}}
		if i%10 == 0 {
			vals = append(vals, Value{Key: "sparse", V: float64(-i)})
		}
		r := row{seq: uint64(i + 3), step: step, vals: vals}
		rows = append(rows, r)
		m.Add(r.seq, int64(i)*1e9, r.step, r.vals)
	}
	m.RowsFunc = func(from, to uint64, fn func(uint64, int64, int64, []Value) bool) error {
		for _, r := range rows {
			if r.seq >= from && r.seq <= to && !fn(r.seq, 0, r.step, r.vals) {
				return nil
			}
		}
		return nil
	}
	return m, rows
}

func TestExactWhenFewRows(t *testing.T) {
	m, _ := build(t, 500)
	res, err := Run(m.B, m, Query{Points: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Exact || res.Level != -1 {
		t.Fatalf("exact %v level %d, want exact rows", res.Exact, res.Level)
	}
	if got := len(res.Series["a"].Steps); got != 500 {
		t.Fatalf("a has %d points, want 500", got)
	}
	if got := len(res.Series["sparse"].Steps); got != 50 {
		t.Fatalf("sparse has %d points, want 50", got)
	}
	if res.FirstStep != 0 || res.LastStep != 998 {
		t.Fatalf("extent %d..%d", res.FirstStep, res.LastStep)
	}
}

func TestRangeExact(t *testing.T) {
	m, _ := build(t, 200000)
	res, err := Run(m.B, m, Query{Points: 500, MinStep: 1000, MaxStep: 1998, HasMin: true, HasMax: true, Keys: []string{"b"}})
	if err != nil {
		t.Fatal(err)
	}
	s := res.Series["b"]
	if !res.Exact || len(s.Steps) != 500 || s.Steps[0] != 1000 || s.Steps[499] != 1998 || s.Values[0] != 500 {
		t.Fatalf("exact %v, %d points, first %v last %v", res.Exact, len(s.Steps), s.Steps[:1], s.Steps[len(s.Steps)-1:])
	}
	if _, ok := res.Series["a"]; ok {
		t.Fatal("key a returned, not asked for")
	}
}

func TestDownsampleKeepsExtremes(t *testing.T) {
	m, rows := build(t, 300000)
	res, err := Run(m.B, m, Query{Points: 800})
	if err != nil {
		t.Fatal(err)
	}
	if res.Level < 0 || res.Exact {
		t.Fatalf("level %d exact %v: want tiers", res.Level, res.Exact)
	}
	s := res.Series["b"]
	if n := len(s.Steps); n > 1600 || n < 400 {
		t.Fatalf("%d points for 800 buckets", n)
	}
	if s.Values[0] != 0 || s.Values[len(s.Values)-1] != float64(len(rows)-1) {
		t.Fatalf("first %v last %v: the extremes are lost", s.Values[0], s.Values[len(s.Values)-1])
	}
	a := res.Series["a"]
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range a.Values {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	if lo > -0.9999 || hi < 0.9999 {
		t.Fatalf("sine range %v..%v, want -1..1", lo, hi)
	}
	for i := 1; i < len(s.Steps); i++ {
		if s.Steps[i] < s.Steps[i-1] {
			t.Fatalf("steps out of order at %d", i)
		}
	}
}

func TestBuilderRoundTrip(t *testing.T) {
	m, _ := build(t, 40001)
	data, err := m.B.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var b Builder
	if err := b.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	r1, _ := Run(m.B, m, Query{Points: 100})
	r2, err := Run(&b, m, Query{Points: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(r1.Series["b"].Steps) != len(r2.Series["b"].Steps) || r2.LastStep != r1.LastStep {
		t.Fatalf("round trip changed the answer")
	}
	var blk Block
	enc := AppendBlock(nil, b.Partial(0))
	if err := DecodeBlock(enc, &blk); err != nil || blk.Rows != b.Partial(0).Rows {
		t.Fatalf("block round trip: %v", err)
	}
}

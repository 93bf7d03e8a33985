package rollup

import (
	"errors"
	"math"
	"sort"
)

// Reader reads a run's complete blocks and its rows.
type Reader interface {
	// Blocks calls fn with the complete blocks of level from index first
	// on, in order, until fn returns false or there are no more. The block
	// is valid only during the call.
	Blocks(level int, first uint64, fn func(*Block) bool) error
	// Rows calls fn with the live history rows whose seq is in
	// [from, to], in log order, with their numeric values, until fn
	// returns false.
	Rows(from, to uint64, fn func(seq uint64, t int64, step int64, vals []Value) bool) error
}

// Query selects what a chart shows.
type Query struct {
	// Keys to return; empty means every numeric key.
	Keys []string
	// MinStep and MaxStep bound the steps when HasMin and HasMax are set,
	// both inclusive.
	MinStep, MaxStep int64
	HasMin, HasMax   bool
	// Points is the chart's width in buckets; zero means 1000. A key gets at
	// most two points (its minimum and maximum) per bucket.
	Points int
}

func (q *Query) in(step int64) bool {
	return (!q.HasMin || step >= q.MinStep) && (!q.HasMax || step <= q.MaxStep)
}

// overlaps reports whether a block's steps overlap the query's range.
func (q *Query) overlaps(b *Block) bool {
	return (!q.HasMin || b.LastStep >= q.MinStep) && (!q.HasMax || b.FirstStep <= q.MaxStep)
}

// Series is one key's points, in step order.
type Series struct {
	Steps  []int64   `json:"steps"`
	Values []float64 `json:"values"`
}

// Result is a chart's data.
type Result struct {
	// Series by key, for the keys asked that have values in range.
	Series map[string]*Series `json:"series"`
	// Exact is true when every row in range is returned as logged.
	Exact bool `json:"exact"`
	// Level is the tier the points come from, -1 for the rows themselves.
	Level int `json:"level"`
	// Rows is the number of history rows in range (counted from the
	// blocks, so it includes rows of edge blocks just outside it).
	Rows uint64 `json:"rows"`
	// FirstStep and LastStep are the run's step extent.
	FirstStep int64 `json:"first_step"`
	LastStep  int64 `json:"last_step"`
	// TimeSteps and Times map steps to wall time (unix nanoseconds), a few
	// points a chart can interpolate between.
	TimeSteps []int64 `json:"time_steps"`
	Times     []int64 `json:"times"`
}

// ErrStale is returned by Run for a builder marked stale.
var ErrStale = errors.New("rollup: tiers are stale after a rewind")

// Run answers q from the builder's partial blocks and r.
func Run(b *Builder, r Reader, q Query) (*Result, error) {
	if b.stale {
		return nil, ErrStale
	}
	if q.Points <= 0 {
		q.Points = 1000
	}
	want := map[uint32]string{}
	if len(q.Keys) == 0 {
		for i, n := range b.names {
			want[uint32(i)] = n
		}
	} else {
		for _, k := range q.Keys {
			if id, ok := b.ids[k]; ok {
				want[id] = k
			}
		}
	}
	res := &Result{Series: map[string]*Series{}, Level: -1}
	if b.rows == 0 {
		res.Exact = true
		return res, nil
	}
	top := Levels - 1
	// The run's extent: the first top block's first step, the partial's
	// (or the last complete block's) last step.
	var blocks []Block
	collect := func(level int, first uint64) error {
		blocks = blocks[:0]
		err := r.Blocks(level, first, func(blk *Block) bool {
			if q.HasMax && blk.FirstStep > q.MaxStep {
				return false
			}
			if q.overlaps(blk) {
				c := *blk
				c.Keys = append([]KeyStat(nil), blk.Keys...)
				blocks = append(blocks, c)
			}
			return true
		})
		if err != nil {
			return err
		}
		if p := b.Partial(level); p != nil && q.overlaps(p) {
			blocks = append(blocks, *p)
		}
		return nil
	}
	// Extent from the top level: every level covers all rows.
	first := true
	err := r.Blocks(top, 0, func(blk *Block) bool {
		if first {
			res.FirstStep = blk.FirstStep
			first = false
		}
		res.LastStep = blk.LastStep
		return true
	})
	if err != nil {
		return nil, err
	}
	if p := b.Partial(top); p != nil {
		if first {
			res.FirstStep = p.FirstStep
		}
		res.LastStep = p.LastStep
	}
	start := uint64(0)
	for level := top; level >= 0; level-- {
		if err := collect(level, start); err != nil {
			return nil, err
		}
		if len(blocks) == 0 {
			return res, nil
		}
		if len(blocks) >= q.Points/2 {
			res.Level = level
			for i := range blocks {
				res.Rows += uint64(blocks[i].Rows)
			}
			bucketBlocks(res, blocks, want, q)
			return res, nil
		}
		if level > 0 {
			start = blocks[0].Index * fanout
		}
	}
	// Fewer than 16*Points rows in range: read them.
	from, to := blocks[0].FirstSeq, blocks[len(blocks)-1].LastSeq
	var rows []rawRow
	err = r.Rows(from, to, func(seq uint64, t int64, step int64, vals []Value) bool {
		if !q.in(step) {
			return !q.HasMax || step <= q.MaxStep
		}
		rows = append(rows, rawRow{step: step, t: t, vals: append([]Value(nil), vals...)})
		return true
	})
	if err != nil {
		return nil, err
	}
	res.Rows = uint64(len(rows))
	bucketRows(res, rows, want, q)
	return res, nil
}

type rawRow struct {
	step int64
	t    int64
	vals []Value
}

// span returns the step range the buckets divide.
func span(res *Result, q Query) (lo, hi int64) {
	lo, hi = res.FirstStep, res.LastStep
	if q.HasMin && q.MinStep > lo {
		lo = q.MinStep
	}
	if q.HasMax && q.MaxStep < hi {
		hi = q.MaxStep
	}
	if hi < lo {
		hi = lo
	}
	return lo, hi
}

func bucketOf(step, lo, hi int64, n int) int {
	if hi == lo {
		return 0
	}
	i := int(float64(step-lo) / float64(hi-lo+1) * float64(n))
	if i < 0 {
		return 0
	}
	if i >= n {
		return n - 1
	}
	return i
}

// emit appends a bucket's minimum and maximum points in step order.
func emit(s *Series, st *Stat) {
	a, av, b, bv := st.MinStep, st.Min, st.MaxStep, st.Max
	if a > b {
		a, av, b, bv = b, bv, a, av
	}
	s.Steps = append(s.Steps, a)
	s.Values = append(s.Values, av)
	if b != a {
		s.Steps = append(s.Steps, b)
		s.Values = append(s.Values, bv)
	}
}

func bucketBlocks(res *Result, blocks []Block, want map[uint32]string, q Query) {
	lo, hi := span(res, q)
	for _, blk := range blocks {
		if q.in(blk.FirstStep) {
			res.TimeSteps = append(res.TimeSteps, blk.FirstStep)
			res.Times = append(res.Times, blk.FirstTime)
		}
	}
	last := blocks[len(blocks)-1]
	if q.in(last.LastStep) {
		res.TimeSteps = append(res.TimeSteps, last.LastStep)
		res.Times = append(res.Times, last.LastTime)
	}
	for id, key := range want {
		var (
			s   Series
			cur Stat
			bi  = -1
		)
		for i := range blocks {
			st := blocks[i].find(id)
			if st == nil {
				continue
			}
			clipped := clip(st, q)
			if clipped.N == 0 {
				continue
			}
			b := bucketOf(clipped.MinStep, lo, hi, q.Points)
			if b != bi && cur.N > 0 {
				emit(&s, &cur)
				cur = Stat{}
			}
			bi = b
			cur.merge(&clipped)
		}
		if cur.N > 0 {
			emit(&s, &cur)
		}
		if len(s.Steps) > 0 {
			sortSeries(&s)
			res.Series[key] = &s
		}
	}
}

// clip drops the points of an edge block's stat that lie outside the range.
func clip(st *Stat, q Query) Stat {
	c := *st
	minIn, maxIn := q.in(st.MinStep), q.in(st.MaxStep)
	switch {
	case minIn && maxIn:
	case minIn:
		c.Max, c.MaxStep = c.Min, c.MinStep
	case maxIn:
		c.Min, c.MinStep = c.Max, c.MaxStep
	case q.in(st.LastStep):
		c.Min, c.MinStep, c.Max, c.MaxStep = c.Last, c.LastStep, c.Last, c.LastStep
	default:
		c.N = 0
	}
	return c
}

func sortSeries(s *Series) {
	if sort.SliceIsSorted(s.Steps, func(i, j int) bool { return s.Steps[i] < s.Steps[j] }) {
		return
	}
	idx := make([]int, len(s.Steps))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(i, j int) bool { return s.Steps[idx[i]] < s.Steps[idx[j]] })
	steps := make([]int64, len(idx))
	vals := make([]float64, len(idx))
	for i, j := range idx {
		steps[i], vals[i] = s.Steps[j], s.Values[j]
	}
	s.Steps, s.Values = steps, vals
}

func bucketRows(res *Result, rows []rawRow, want map[uint32]string, q Query) {
	names := map[string]bool{}
	for _, k := range want {
		names[k] = true
	}
	// Times: at most Points of them.
	stride := len(rows)/q.Points + 1
	for i := 0; i < len(rows); i += stride {
		res.TimeSteps = append(res.TimeSteps, rows[i].step)
		res.Times = append(res.Times, rows[i].t)
	}
	if n := len(rows); n > 0 && (len(res.TimeSteps) == 0 || res.TimeSteps[len(res.TimeSteps)-1] != rows[n-1].step) {
		res.TimeSteps = append(res.TimeSteps, rows[n-1].step)
		res.Times = append(res.Times, rows[n-1].t)
	}
	counts := map[string]int{}
	for _, r := range rows {
		for _, v := range r.vals {
			if names[v.Key] {
				counts[v.Key]++
			}
		}
	}
	lo, hi := span(res, q)
	res.Exact = true
	for key, n := range counts {
		s := &Series{Steps: make([]int64, 0, min(n, 2*q.Points)), Values: make([]float64, 0, min(n, 2*q.Points))}
		if n <= 2*q.Points {
			for _, r := range rows {
				for _, v := range r.vals {
					if v.Key == key {
						s.Steps = append(s.Steps, r.step)
						s.Values = append(s.Values, v.V)
					}
				}
			}
		} else {
			res.Exact = false
			var cur Stat
			bi := -1
			for _, r := range rows {
				for _, v := range r.vals {
					if v.Key != key {
						continue
					}
					b := bucketOf(r.step, lo, hi, q.Points)
					if b != bi && cur.N > 0 {
						emit(s, &cur)
						cur = Stat{}
					}
					bi = b
					cur.add(r.step, v.V)
				}
			}
			if cur.N > 0 {
				emit(s, &cur)
			}
		}
		res.Series[key] = s
	}
}

// Finite reports whether v can be charted (and encoded as JSON).
func Finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

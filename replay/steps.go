package replay

import "math"

// maxSegments bounds the runs of steps a State keeps per run (about 40 bytes
// each).
const maxSegments = 1024

// segment is a run of live history rows in log order. An exact segment holds
// n rows at steps first, first+stride, ..., last (stride 0: n rows at one
// step). A merged segment holds n rows with steps somewhere in [first, last].
type segment struct {
	first, last int64
	n           uint64
	stride      uint64 // exact segments with n >= 2
	exact       bool
}

// steps counts live history rows without keeping them: a row is one more
// step in the current segment when it continues that segment's stride.
type steps struct {
	segs   []segment
	total  uint64
	approx bool // a rewind landed inside a merged segment
}

func (h *steps) rows() uint64 { return h.total }

func (h *steps) add(step int64) {
	h.total++
	if n := len(h.segs); n > 0 {
		l := &h.segs[n-1]
		if l.exact && l.n == 1 && step >= l.first {
			l.stride = uint64(step) - uint64(l.first)
			l.last, l.n = step, 2
			return
		}
		if l.exact && l.n >= 2 && step >= l.last && uint64(step)-uint64(l.last) == l.stride {
			l.last = step
			l.n++
			return
		}
	}
	h.segs = append(h.segs, segment{first: step, last: step, n: 1, exact: true})
	if len(h.segs) > maxSegments {
		a, b := h.segs[0], h.segs[1]
		h.segs[1] = segment{first: min(a.first, b.first), last: max(a.last, b.last), n: a.n + b.n}
		h.segs = append(h.segs[:0], h.segs[1:]...)
	}
}

// rewind drops every live row with a step >= step.
func (h *steps) rewind(step int64) {
	out := h.segs[:0]
	h.total = 0
	for _, s := range h.segs {
		switch {
		case s.first >= step:
			continue
		case s.last < step:
		case s.exact:
			// first < step <= last, so stride > 0.
			kept := (uint64(step-1)-uint64(s.first))/s.stride + 1
			s.n = kept
			s.last = int64(uint64(s.first) + (kept-1)*s.stride)
			if kept == 1 {
				s.stride = 0
			}
		default:
			frac := (float64(step) - float64(s.first)) / (float64(s.last) - float64(s.first) + 1)
			kept := uint64(math.Round(frac * float64(s.n)))
			// The rows at first and last are real: one stays, one goes.
			kept = max(1, min(kept, s.n-1))
			s.n = kept
			s.last = step - 1
			h.approx = true
		}
		h.total += s.n
		out = append(out, s)
	}
	clear(h.segs[len(out):])
	h.segs = out
}

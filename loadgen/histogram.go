package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// Histogram records durations in log-linear buckets: 32 per power of two,
// so a quantile is within about 3% of the truth, in fixed memory whatever
// the number of records. The zero Histogram is empty and ready. It is not
// safe for concurrent use.
type Histogram struct {
	buckets [60 * 32]uint64 // covers every uint64: 58 is the largest shift
	count   uint64
	max     time.Duration
}

// Add records d; a negative d counts as 0.
func (h *Histogram) Add(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.buckets[bucketOf(uint64(d))]++
	h.count++
	if d > h.max {
		h.max = d
	}
}

// Count returns how many durations were added.
func (h *Histogram) Count() uint64 { return h.count }

// Max returns the largest duration added, 0 for none.
func (h *Histogram) Max() time.Duration { return h.max }

func bucketOf(v uint64) int {
	if v < 32 {
		return int(v)
	}
	e := bits.Len64(v) - 6 // keep the top five bits below the leading one
	return (e+1)*32 + int(v>>uint(e))&31
}

// bucketHigh returns the largest value of bucket i.
func bucketHigh(i int) uint64 {
	if i < 32 {
		return uint64(i)
	}
	e := i/32 - 1
	return (uint64(32+i%32+1) << uint(e)) - 1
}

// Quantile returns the upper bound of the bucket holding quantile q (capped
// at Max), 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.count == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.count)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, n := range h.buckets {
		seen += n
		if seen >= rank {
			return min(time.Duration(bucketHigh(i)), h.max)
		}
	}
	return h.max
}

package loadgen

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistogram(t *testing.T) {
	var h Histogram
	rng := rand.New(rand.NewPCG(1, 2))
	var all []time.Duration
	for i := 0; i < 100000; i++ {
		// Spread over six orders of magnitude, like ack latencies.
		d := time.Duration(float64(time.Microsecond) * (1 + rng.ExpFloat64()*float64(1+i%1000)))
		h.Add(d)
		all = append(all, d)
	}
	slices.Sort(all)
	if h.Count() != uint64(len(all)) || h.Max() != all[len(all)-1] {
		t.Fatalf("count %d max %v, want %d %v", h.Count(), h.Max(), len(all), all[len(all)-1])
	}
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999} {
		exact := all[int(q*float64(len(all)))-1]
		got := h.Quantile(q)
		if got < exact || float64(got) > float64(exact)*1.04 {
			t.Errorf("q%.3f = %v, exact %v: outside the bucket's 3%% bound", q, got, exact)
		}
	}
	for i := 0; i < len(h.buckets); i++ {
		if b := bucketOf(bucketHigh(i)); b != i {
			t.Fatalf("bucketOf(bucketHigh(%d)) = %d", i, b)
		}
		if i > 0 && bucketOf(bucketHigh(i-1)+1) != i {
			t.Fatalf("bucket %d does not start right after bucket %d", i, i-1)
		}
	}
	var empty Histogram
	if empty.Quantile(0.5) != 0 {
		t.Error("quantile of nothing")
	}
}

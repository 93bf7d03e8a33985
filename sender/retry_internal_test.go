package sender

import (
	"testing"
	"time"
)

// TestRetryWaitGrowsToItsCap checks the wait before each retry: full jitter
// (Rand's share) over a window that doubles from BackoffBase up to
// BackoffMax and stays there.
func TestRetryWaitGrowsToItsCap(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		rand float64
		want []time.Duration // for failures 1, 2, 3, ...
	}{
		{1, []time.Duration{1 * ms, 2 * ms, 4 * ms, 4 * ms, 4 * ms}},
		{0.5, []time.Duration{ms / 2, 1 * ms, 2 * ms, 2 * ms, 2 * ms}},
		{0, []time.Duration{0, 0, 0, 0, 0}},
	} {
		opts := Options{BackoffBase: ms, BackoffMax: 4 * ms, Rand: func() float64 { return tc.rand }}.withDefaults()
		for i, want := range tc.want {
			if got := retryWait(opts, i+1); got != want {
				t.Errorf("rand %v, failure %d: wait %v, want %v", tc.rand, i+1, got, want)
			}
		}
		// However many failures, the window stays capped.
		if got, want := retryWait(opts, 1000), time.Duration(tc.rand*float64(4*ms)); got != want {
			t.Errorf("rand %v, failure 1000: wait %v, want %v", tc.rand, got, want)
		}
	}
}

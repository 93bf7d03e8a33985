package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wal/waltest"
)

func TestLatencyHistogram(t *testing.T) {
	var h latencyHistogram
	rng := rand.New(rand.NewPCG(1, 2))
	var all []time.Duration
	for i := 0; i < 100000; i++ {
		// Spread over six orders of magnitude, like ack latencies.
		d := time.Duration(float64(time.Microsecond) * (1 + rng.ExpFloat64()*float64(1+i%1000)))
		h.add(d)
		all = append(all, d)
	}
	slices.Sort(all)
	if h.count != uint64(len(all)) || h.max != all[len(all)-1] {
		t.Fatalf("count %d max %v, want %d %v", h.count, h.max, len(all), all[len(all)-1])
	}
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999} {
		exact := all[int(q*float64(len(all)))-1]
		got := h.quantile(q)
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
	var empty latencyHistogram
	if empty.quantile(0.5) != 0 {
		t.Error("quantile of nothing")
	}
}

func TestHistoryStep(t *testing.T) {
	for _, step := range []int64{0, 1, 300, 1 << 40} {
		rec := waltest.History(step, 1, 10)[0]
		b, err := proto.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		got, ok, err := historyStep(b)
		if err != nil || !ok || got != step {
			t.Errorf("step %d: got %d %v %v", step, got, ok, err)
		}
	}
	b, _ := proto.Marshal(&runlogv1.Record{Seq: 3, Payload: &runlogv1.Record_Rewind{Rewind: &runlogv1.Rewind{Step: 5}}})
	if _, ok, err := historyStep(b); ok || err != nil {
		t.Errorf("a rewind read as history: %v %v", ok, err)
	}
	if _, _, err := historyStep([]byte{0xff}); err == nil {
		t.Error("garbage decoded")
	}
}

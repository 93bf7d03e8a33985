package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/runlog/runlog/store/storetest"
)

// BenchmarkAppend measures durable appends of one run's records, 10 scalar
// keys per history row, in batches as a sender sends them. Each commit is
// fsynced.
func BenchmarkAppend(b *testing.B) {
	for _, batch := range []int{256, 1024, 4096} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			recs := storetest.Records(b, storetest.Run{Rows: 200_000})
			ctx := context.Background()
			b.ResetTimer()
			var n int
			for i := range b.N {
				s := storetest.Open(b)
				for from := 0; from < len(recs); from += batch {
					if _, err := s.Append(ctx, fmt.Sprintf("run-%d", i), recs[from:min(from+batch, len(recs))]); err != nil {
						b.Fatal(err)
					}
				}
				n += len(recs)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkAppendParallel measures eight runs appending at once: their
// batches share commits.
func BenchmarkAppendParallel(b *testing.B) {
	const runs, batch = 8, 1024
	recs := storetest.Records(b, storetest.Run{Rows: 50_000})
	ctx := context.Background()
	b.ResetTimer()
	var n int
	for i := range b.N {
		s := storetest.Open(b)
		var wg sync.WaitGroup
		for r := range runs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for from := 0; from < len(recs); from += batch {
					if _, err := s.Append(ctx, fmt.Sprintf("run-%d-%d", i, r), recs[from:min(from+batch, len(recs))]); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		n += runs * len(recs)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}

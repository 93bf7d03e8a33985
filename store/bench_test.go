package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/rollup"
	"github.com/runlog/runlog/store"
	"github.com/runlog/runlog/store/pgtest"
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

// BenchmarkAppendPostgres is BenchmarkAppend on the PostgreSQL store (a
// throwaway cluster, fsync on).
func BenchmarkAppendPostgres(b *testing.B) {
	const batch = 4096
	recs := storetest.Records(b, storetest.Run{Rows: 200_000})
	ctx := context.Background()
	var n int
	for i := range b.N {
		b.StopTimer()
		s := storetest.OpenPostgres(b, pgtest.DB(b))
		b.StartTimer()
		for from := 0; from < len(recs); from += batch {
			if _, err := s.Append(ctx, fmt.Sprintf("run-%d", i), recs[from:min(from+batch, len(recs))]); err != nil {
				b.Fatal(err)
			}
		}
		n += len(recs)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkHistoryPostgres measures the queries of a 1,000,000-row run of
// 10 keys on the PostgreSQL store: a chart of 10 keys downsampled to 2,000
// points (the web UI's query, from the history tiers) and a History query
// of 10 keys sampled to 2,000 rows over a 10,000-step range.
func BenchmarkHistoryPostgres(b *testing.B) {
	ctx := context.Background()
	s := storetest.OpenPostgres(b, pgtest.DB(b))
	const rows = 1_000_000
	w := storetest.Records(b, storetest.Run{Rows: rows, Keys: 10})
	for from := 0; from < len(w); from += 8192 {
		if _, err := s.Append(ctx, "big", w[from:min(from+8192, len(w))]); err != nil {
			b.Fatal(err)
		}
	}
	w = nil
	keys := make([]string, 10)
	for k := range keys {
		keys[k] = fmt.Sprintf("metric/%d", k)
	}
	b.Run("chart-2000", func(b *testing.B) {
		for range b.N {
			res, err := s.Chart(ctx, "big", rollup.Query{Keys: keys, Points: 2000})
			if err != nil {
				b.Fatal(err)
			}
			if len(res.Series) != 10 {
				b.Fatalf("%d series", len(res.Series))
			}
		}
	})
	b.Run("history-range-10000", func(b *testing.B) {
		for range b.N {
			n := 0
			err := s.History(ctx, "big", store.HistoryQuery{Keys: keys, MinStep: 500_000, MaxStep: 509_999, HasMaxStep: true, MaxSamples: 2000}, func(*runlogv1.HistorySample) error {
				n++
				return nil
			})
			if err != nil || n != 2000 {
				b.Fatalf("%d samples, %v", n, err)
			}
		}
	})
}

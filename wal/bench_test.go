package wal_test

import (
	"fmt"
	"testing"

	"github.com/runlog/runlog/wal"
	"github.com/runlog/runlog/wal/waltest"
)

// BenchmarkAppend measures durable appends of 10-key history records in
// batches of the given size: one fsync per batch.
func BenchmarkAppend(b *testing.B) {
	for _, batch := range []int{1, 64, 1024} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			l := waltest.Open(b)
			recs := waltest.History(0, batch, 10)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				for j, r := range recs {
					r.GetHistory().Step = int64(i + j)
				}
				if err := l.Append(recs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	l := waltest.Open(b)
	const n = 100_000
	for i := 0; i < n; i += 1000 {
		if err := l.Append(waltest.History(int64(i), 1000, 10)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		if _, err := l.Verify(wal.VerifyOptions{}, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

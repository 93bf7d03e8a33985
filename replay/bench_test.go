package replay_test

import (
	"path/filepath"
	"testing"

	"github.com/runlog/runlog/replay"
	"github.com/runlog/runlog/replay/replaytest"
	"github.com/runlog/runlog/wal"
)

// benchLog writes n history records with 10 keys each.
func benchLog(b *testing.B, n int) *wal.Log {
	b.Helper()
	path := filepath.Join(b.TempDir(), "wal.bolt")
	l := replaytest.Open(b, path)
	replaytest.WriteHistory(b, l, n, 10)
	b.Cleanup(func() { l.Close() })
	return l
}

const benchRecords = 100_000

// BenchmarkExportJSON measures reading, decoding and encoding records as
// JSON lines (without the write).
func BenchmarkExportJSON(b *testing.B) {
	l := benchLog(b, benchRecords)
	var buf []byte
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		err := replay.EncodedRecords(l, replay.Filter{}, func(seq uint64, data []byte) error {
			var err error
			buf, err = replay.AppendJSONEncoded(buf[:0], data)
			buf = append(buf, '\n')
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(benchRecords)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkFold measures folding a run's records into its state.
func BenchmarkFold(b *testing.B) {
	l := benchLog(b, benchRecords)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := replay.Fold(l, "bench", 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(benchRecords)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkDecodeEvent measures decoding encoded records held in memory and
// folding them, as the hub's store does: the log read is not measured.
func BenchmarkDecodeEvent(b *testing.B) {
	l := benchLog(b, benchRecords)
	var recs [][]byte
	err := l.Scan(1, func(seq uint64, data []byte) error {
		recs = append(recs, append([]byte(nil), data...))
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s := replay.NewState("bench")
		for _, data := range recs {
			e, err := replay.DecodeEvent(data)
			if err != nil {
				b.Fatal(err)
			}
			s.ApplyEvent(&e)
		}
	}
	b.ReportMetric(float64(len(recs))*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkHistory measures streaming the live history of every key.
func BenchmarkHistory(b *testing.B) {
	l := benchLog(b, benchRecords)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := replay.History(l, replay.HistoryOptions{}, func(replay.Row) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(benchRecords)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkHistoryKeys measures streaming two keys of ten, as a chart does.
func BenchmarkHistoryKeys(b *testing.B) {
	l := benchLog(b, benchRecords)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		err := replay.History(l, replay.HistoryOptions{Keys: []string{"metric/0", "metric/5"}}, func(replay.Row) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(benchRecords)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

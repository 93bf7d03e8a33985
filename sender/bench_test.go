package sender_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/runlog/runlog/hub"
	"github.com/runlog/runlog/sender"
	"github.com/runlog/runlog/sender/sendertest"
	"github.com/runlog/runlog/store/storetest"
	"github.com/runlog/runlog/wal"
)

// BenchmarkSync measures pushing a finished run of 10-key history rows from
// its wal into a hub served on loopback with a real store (fsync per
// commit): the path of runlog sync and of a service's sender catching up.
func BenchmarkSync(b *testing.B) {
	const rows = 200_000
	l, err := wal.Open(filepath.Join(b.TempDir(), "wal.bolt"), wal.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	storetest.Write(b, l, storetest.Run{Rows: rows, Exit: finished})
	b.ResetTimer()
	for i := range b.N {
		h := sendertest.StartHub(b, hub.Options{})
		up := h.Dial(sender.HubOptions{})
		s := sender.New(l, fmt.Sprintf("run-%d", i), h.URL, up, sender.Options{Drain: true})
		if err := s.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		if hw := h.HighWater(fmt.Sprintf("run-%d", i)); hw != l.LastSeq() {
			b.Fatalf("hub holds %d of %d records", hw, l.LastSeq())
		}
	}
	b.ReportMetric(float64(b.N)*float64(l.LastSeq())/b.Elapsed().Seconds(), "records/s")
}

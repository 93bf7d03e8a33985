// Package waltest has helpers for tests that need a run's log.
package waltest

import (
	"fmt"
	"path/filepath"
	"testing"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wal"
)

// Open creates a log in a temporary directory. On cleanup it closes the log
// if the test did not, and fails the test if the log does not verify clean.
func Open(t testing.TB) *wal.Log {
	t.Helper()
	path := filepath.Join(t.TempDir(), "wal.bolt")
	l, err := wal.Open(path, wal.Options{})
	if err != nil {
		t.Fatalf("open wal: %v", err)
	}
	t.Cleanup(func() {
		l.Close()
		ro, err := wal.Open(path, wal.Options{ReadOnly: true})
		if err != nil {
			t.Errorf("reopen wal for check: %v", err)
			return
		}
		defer ro.Close()
		if _, err := ro.Verify(wal.VerifyOptions{}, func(p wal.Problem) {
			t.Errorf("wal check: %v", p)
		}); err != nil {
			t.Errorf("wal check: %v", err)
		}
	})
	return l
}

// History returns n history records for steps from, from+1, ... with keys
// scalar values, as a client would send them (client id "test", client
// sequence equal to the step plus one).
func History(from int64, n, keys int) []*runlogv1.Record {
	out := make([]*runlogv1.Record, n)
	for i := range out {
		step := from + int64(i)
		items := make([]*runlogv1.Item, keys)
		for k := range items {
			items[k] = &runlogv1.Item{
				Key:   fmt.Sprintf("metric/%d", k),
				Value: &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: float64(step) * float64(k+1)}},
			}
		}
		out[i] = &runlogv1.Record{
			ClientId:  "test",
			ClientSeq: uint64(step + 1),
			Payload:   &runlogv1.Record_History{History: &runlogv1.HistoryRow{Step: step, Items: items}},
		}
	}
	return out
}

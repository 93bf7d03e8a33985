// Package storetest has helpers for tests that need a hub store or the
// records a run's log would sync into one.
package storetest

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"path/filepath"
	"testing"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/store"
	"github.com/runlog/runlog/wal"
	"github.com/runlog/runlog/wal/waltest"
)

// Open opens a Bolt store in a temporary directory and closes it on cleanup.
func Open(t testing.TB) *store.Bolt {
	t.Helper()
	return OpenDir(t, t.TempDir())
}

// OpenDir opens a Bolt store in dir and closes it on cleanup.
func OpenDir(t testing.TB, dir string) *store.Bolt {
	t.Helper()
	s, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Run describes a run to generate.
type Run struct {
	Project string
	// Rows is the number of history rows, at steps 0, 1, 2, ...
	Rows int
	// Keys is the number of scalar keys per row; zero means 10.
	Keys int
	// Exit, when set, ends the run with this exit record.
	Exit *runlogv1.Exit
}

// Records writes the run into a real log in a temporary directory and
// returns its records exactly as the log stores them: a RunInfo record, a
// config record, the history rows and the exit record if any.
func Records(t testing.TB, r Run) [][]byte {
	t.Helper()
	l, err := wal.Open(filepath.Join(t.TempDir(), "wal.bolt"), wal.Options{})
	if err != nil {
		t.Fatalf("open wal: %v", err)
	}
	defer l.Close()
	Write(t, l, r)
	out := make([][]byte, 0, l.LastSeq())
	err = l.Scan(1, func(seq uint64, data []byte) error {
		out = append(out, append([]byte(nil), data...))
		return nil
	})
	if err != nil {
		t.Fatalf("scan wal: %v", err)
	}
	return out
}

// Write appends the run's records to l.
func Write(t testing.TB, l *wal.Log, r Run) {
	t.Helper()
	keys := r.Keys
	if keys == 0 {
		keys = 10
	}
	head := []*runlogv1.Record{
		{ClientId: "test", Payload: &runlogv1.Record_Run{Run: &runlogv1.RunInfo{Project: r.Project, Name: "generated"}}},
		{ClientId: "test", Payload: &runlogv1.Record_Config{Config: &runlogv1.ConfigUpdate{Set: []*runlogv1.Item{
			{Key: "lr", Value: &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: 0.001}}},
		}}}},
	}
	if err := l.Append(head); err != nil {
		t.Fatalf("append: %v", err)
	}
	const chunk = 4096
	for from := 0; from < r.Rows; from += chunk {
		n := min(chunk, r.Rows-from)
		if err := l.Append(waltest.History(int64(from), n, keys)); err != nil {
			t.Fatalf("append: %v", err)
		}
	}
	if r.Exit != nil {
		if err := l.Append([]*runlogv1.Record{{ClientId: "test", Payload: &runlogv1.Record_Exit{Exit: r.Exit}}}); err != nil {
			t.Fatalf("append exit: %v", err)
		}
	}
}

// Digest returns the store digest of records in order, computed here from
// the documented format (store/doc.go), not by the store's own code, so that
// comparing the two checks the store.
func Digest(records [][]byte) []byte {
	d := newDigest()
	for _, r := range records {
		d.add(r)
	}
	return d.h.Sum(nil)
}

// LogDigest returns the store digest of l's records 1..to and how many there
// were.
func LogDigest(l *wal.Log, to uint64) ([]byte, uint64, error) {
	d := newDigest()
	var n uint64
	err := l.Scan(1, func(seq uint64, data []byte) error {
		if seq > to {
			return errDone
		}
		d.add(data)
		n++
		return nil
	})
	if err != nil && !errors.Is(err, errDone) {
		return nil, n, err
	}
	return d.h.Sum(nil), n, nil
}

// digest is the documented store digest: SHA-256 over the records in order,
// each preceded by its length as a 4-byte big-endian number.
type digest struct{ h hash.Hash }

func newDigest() *digest { return &digest{h: sha256.New()} }

func (d *digest) add(data []byte) {
	d.h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(data))))
	d.h.Write(data)
}

var errDone = errors.New("storetest: done")

package wal_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/runlog/runlog/wal"
	"github.com/runlog/runlog/wal/waltest"
)

// FuzzWALFile mutates whole log files: opening, verifying, scanning and
// reading one must return errors, never crash the process. The committed
// corpus (testdata/fuzz/FuzzWALFile) holds small real logs; make test runs
// it, make soak fuzzes for longer.
func FuzzWALFile(f *testing.F) {
	l := waltest.Open(f)
	if err := l.Append(waltest.History(0, 20, 2)); err != nil {
		f.Fatal(err)
	}
	if err := l.SetCursor("upstream:grpc://hub", 10); err != nil {
		f.Fatal(err)
	}
	path := l.Path()
	l.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	// bbolt grows a file ahead of use; the zero pages past the data would
	// only slow the fuzzer down.
	end := len(data) / 4096 * 4096
	for end > 4*4096 && !slices.ContainsFunc(data[end-4096:end], func(b byte) bool { return b != 0 }) {
		end -= 4096
	}
	data = data[:end]
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "wal.bolt")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if l, err := wal.Open(path, wal.Options{ReadOnly: true}); err == nil {
			res, verr := l.Verify(wal.VerifyOptions{}, nil)
			var n uint64
			serr := l.Scan(1, func(uint64, []byte) error { n++; return nil })
			// Verify and Scan name the same first bad seq.
			var ce *wal.CorruptError
			if errors.As(serr, &ce) && verr == nil && res.FirstBad != 0 && ce.Seq != res.FirstBad {
				t.Errorf("scan stops at seq %d, verify says first bad %d", ce.Seq, res.FirstBad)
			}
			l.Read(1, 100, 0)
			l.Cursors()
			l.Meta("format")
			l.Close()
		}
		if l, err := wal.Open(path, wal.Options{MustExist: true}); err == nil {
			l.Scan(1, func(uint64, []byte) error { return nil })
			l.Close()
		}
	})
}

package wal_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/runlog/runlog/wal"
	"github.com/runlog/runlog/wal/waltest"
)

// flip damages the value of record seq in the log at path, a checksum the
// open-time page walk cannot see.
func flip(t *testing.T, path string, seq uint64) {
	t.Helper()
	damage(t, path, func(b *bolt.Bucket) {
		v := append([]byte(nil), b.Get(key(seq))...)
		v[len(v)/2] ^= 0x5a
		if err := b.Put(key(seq), v); err != nil {
			t.Fatal(err)
		}
	})
}

func TestWriterRefusesLogDamagedInTheMiddle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wal.bolt")
	l, err := wal.Open(path, wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(waltest.History(0, 100, 3)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	flip(t, path, 57)

	// For writing it opens, but takes no records: an append would land
	// behind a hole.
	w, err := wal.Open(path, wal.Options{})
	if err != nil {
		t.Fatalf("writable open: %v", err)
	}
	var ce *wal.CorruptError
	if !errors.As(w.Refused(), &ce) || ce.Seq != 57 {
		t.Fatalf("a log damaged at seq 57 does not refuse appends: %v", w.Refused())
	}
	if err := w.Append(waltest.History(100, 1, 3)); !errors.As(err, &ce) || ce.Seq != 57 {
		t.Fatalf("append to a log damaged at seq 57: %v", err)
	}
	w.Close()
	// For reading it does, up to the damage.
	ro, err := wal.Open(path, wal.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open: %v", err)
	}
	ro.Close()
}

func TestAppendRefusedOnceAReaderMetDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wal.bolt")
	l, err := wal.Open(path, wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Append(waltest.History(0, 100, 3)); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(waltest.History(100, 1, 3)); err != nil {
		t.Fatalf("append to a sound log: %v", err)
	}
	// The file is damaged under an open writer (a bad disk, say): flip a
	// byte of record 57's value in place, found by its unique id.
	recs, err := l.Read(57, 1, 0)
	if err != nil || len(recs) != 1 {
		t.Fatalf("read 57: %v", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(data, recs[0].GetId())
	if at < 0 || bytes.Index(data[at+1:], recs[0].GetId()) >= 0 {
		t.Fatalf("record 57's id is not in the file once")
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{data[at] ^ 0x5a}, int64(at)); err != nil {
		t.Fatal(err)
	}
	f.Close()

	err = l.Scan(1, func(uint64, []byte) error { return nil })
	var ce *wal.CorruptError
	if !errors.As(err, &ce) || ce.Seq != 57 {
		t.Fatalf("scan: %v", err)
	}
	err = l.Append(waltest.History(101, 1, 3))
	if !errors.As(err, &ce) || ce.Seq != 57 {
		t.Fatalf("append after a reader met damage at seq 57: %v", err)
	}
	if l.LastSeq() != 101 {
		t.Fatalf("LastSeq %d after a refused append, want 101", l.LastSeq())
	}
}

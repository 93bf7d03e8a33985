package wal_test

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wal"
	"github.com/runlog/runlog/wal/waltest"
	"github.com/runlog/runlog/wire"
)

func TestAppendReadRoundTrip(t *testing.T) {
	l := waltest.Open(t)
	for batch := range 3 {
		if err := l.Append(waltest.History(int64(batch*10), 10, 3)); err != nil {
			t.Fatalf("append batch %d: %v", batch, err)
		}
	}
	if got := l.LastSeq(); got != 30 {
		t.Fatalf("LastSeq = %d, want 30", got)
	}
	recs, err := l.Read(1, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 30 {
		t.Fatalf("read %d records, want 30", len(recs))
	}
	var prev ulid.ULID
	for i, r := range recs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d", i, r.Seq)
		}
		var id ulid.ULID
		copy(id[:], r.Id)
		if id.Compare(prev) <= 0 {
			t.Fatalf("seq %d: ULID %s not after %s", r.Seq, id, prev)
		}
		prev = id
		if r.GetHistory().GetStep() != int64(i) {
			t.Fatalf("seq %d: step %d, want %d", r.Seq, r.GetHistory().GetStep(), i)
		}
	}
	if l.LastStep() != 29 {
		t.Fatalf("LastStep = %d, want 29", l.LastStep())
	}
	if l.ClientSeq("test") != 30 {
		t.Fatalf("ClientSeq = %d, want 30", l.ClientSeq("test"))
	}
	// Bounded reads.
	recs, err = l.Read(25, 3, 0)
	if err != nil || len(recs) != 3 || recs[0].Seq != 25 {
		t.Fatalf("Read(25, 3) = %d records from %v, %v", len(recs), recs[0].GetSeq(), err)
	}
	recs, err = l.Read(31, 10, 0)
	if err != nil || len(recs) != 0 {
		t.Fatalf("Read past end = %d records, %v", len(recs), err)
	}
}

func TestReopenKeepsEnd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wal.bolt")
	l, err := wal.Open(path, wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(waltest.History(0, 5, 1)); err != nil {
		t.Fatal(err)
	}
	rw := &runlogv1.Record{Payload: &runlogv1.Record_Rewind{Rewind: &runlogv1.Rewind{Step: 2}}}
	if err := l.Append([]*runlogv1.Record{rw}); err != nil {
		t.Fatal(err)
	}
	if err := l.SetCursor("up", 4); err != nil {
		t.Fatal(err)
	}
	last, _ := l.Read(6, 1, 0)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// A clock behind the last record must not produce a smaller ULID or time.
	l, err = wal.Open(path, wal.Options{Now: func() time.Time { return time.Unix(0, last[0].TimeUnixNano).Add(-time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.LastSeq() != 6 || l.LastStep() != 2 || l.ClientSeq("test") != 5 {
		t.Fatalf("after reopen: seq %d step %d client %d, want 6 2 5", l.LastSeq(), l.LastStep(), l.ClientSeq("test"))
	}
	if c, _ := l.Cursor("up"); c != 4 {
		t.Fatalf("cursor = %d, want 4", c)
	}
	if err := l.Append(waltest.History(2, 1, 1)); err != nil {
		t.Fatal(err)
	}
	recs, _ := l.Read(7, 1, 0)
	if recs[0].TimeUnixNano < last[0].TimeUnixNano {
		t.Fatalf("time went backwards across reopen")
	}
	if string(recs[0].Id) <= string(last[0].Id) {
		t.Fatalf("ULID did not increase across reopen")
	}
	res, err := l.Verify(wal.VerifyOptions{}, func(p wal.Problem) { t.Errorf("problem: %v", p) })
	if err != nil || res.Records != 7 || res.LastGood != 7 {
		t.Fatalf("verify = %+v, %v", res, err)
	}
}

func TestNothingAfterExit(t *testing.T) {
	l := waltest.Open(t)
	exit := &runlogv1.Record{Payload: &runlogv1.Record_Exit{Exit: &runlogv1.Exit{Reason: runlogv1.ExitReason_EXIT_REASON_FINISHED}}}
	bad := []*runlogv1.Record{exit, waltest.History(0, 1, 1)[0]}
	if err := l.Append(bad); !errors.Is(err, wal.ErrBadBatch) {
		t.Fatalf("record after exit in one batch: err = %v, want ErrBadBatch", err)
	}
	if l.LastSeq() != 0 {
		t.Fatalf("rejected batch left %d records", l.LastSeq())
	}
	if err := l.Append([]*runlogv1.Record{exit}); err != nil {
		t.Fatal(err)
	}
	if !l.Finished() {
		t.Fatal("not finished after exit record")
	}
	if err := l.Append(waltest.History(0, 1, 1)); !errors.Is(err, wal.ErrFinished) {
		t.Fatalf("append after exit: err = %v, want ErrFinished", err)
	}
}

func TestWaitWakesOnAppendAndClose(t *testing.T) {
	l := waltest.Open(t)
	done := make(chan error, 1)
	go func() { done <- l.Wait(context.Background(), 0) }()
	if err := l.Append(waltest.History(0, 1, 1)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Wait = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- l.Wait(ctx, 1) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait after cancel = %v", err)
	}
	go func() { done <- l.Wait(context.Background(), 1) }()
	l.Close()
	if err := <-done; !errors.Is(err, wal.ErrClosed) {
		t.Fatalf("Wait after close = %v", err)
	}
}

func TestCursorCannotPassEnd(t *testing.T) {
	l := waltest.Open(t)
	if err := l.Append(waltest.History(0, 3, 1)); err != nil {
		t.Fatal(err)
	}
	if err := l.SetCursor("up", 4); !errors.Is(err, wal.ErrCursorAhead) {
		t.Fatalf("SetCursor past end = %v", err)
	}
	if err := l.SetCursor("up", 3); err != nil {
		t.Fatal(err)
	}
	cs, err := l.Cursors()
	if err != nil || cs["up"] != 3 || len(cs) != 1 {
		t.Fatalf("Cursors = %v, %v", cs, err)
	}
}

func TestLockedByAnotherOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wal.bolt")
	l, err := wal.Open(path, wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// bbolt's flock is per open file description, so a second open in the
	// same process contends like another process would.
	_, err = wal.Open(path, wal.Options{ReadOnly: true, LockTimeout: 50 * time.Millisecond})
	if !errors.Is(err, wal.ErrLocked) {
		t.Fatalf("second open = %v, want ErrLocked", err)
	}
	_, err = wal.Open(filepath.Join(t.TempDir(), "missing.bolt"), wal.Options{ReadOnly: true})
	if !errors.Is(err, wal.ErrNotExist) {
		t.Fatalf("open missing = %v, want ErrNotExist", err)
	}
}

// damage edits the records bucket of a closed log directly.
func damage(t *testing.T, path string, fn func(b *bolt.Bucket)) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { fn(tx.Bucket([]byte("records"))); return nil }); err != nil {
		t.Fatal(err)
	}
}

func key(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func TestVerifyFindsDamage(t *testing.T) {
	cases := []struct {
		name     string
		damage   func(t *testing.T, b *bolt.Bucket)
		kind     string
		firstBad uint64
		lastGood uint64
		scanned  int // records a Scan reads: up to a checksum failure or a missing record, else all there are
	}{
		{"flipped byte", func(t *testing.T, b *bolt.Bucket) {
			v := append([]byte(nil), b.Get(key(7))...)
			v[len(v)-1] ^= 0xff
			b.Put(key(7), v)
		}, wal.ProblemChecksum, 7, 6, 6},
		// The first bad seq is the first one not found in its place, the
		// missing one: every reader names it.
		{"missing record", func(t *testing.T, b *bolt.Bucket) { b.Delete(key(4)) }, wal.ProblemGap, 4, 3, 3},
		{"truncated value", func(t *testing.T, b *bolt.Bucket) { b.Put(key(9), []byte{1, 2}) }, wal.ProblemChecksum, 9, 8, 8},
		{"record after exit", func(t *testing.T, b *bolt.Bucket) {
			exit := &runlogv1.Record{Seq: 10, Id: make([]byte, 16), Payload: &runlogv1.Record_Exit{Exit: &runlogv1.Exit{}}}
			raw, _ := b.Get(key(10)), 0
			var old runlogv1.Record
			if err := proto.Unmarshal(raw[4:], &old); err != nil {
				t.Fatal(err)
			}
			exit.Id, exit.TimeUnixNano = old.Id, old.TimeUnixNano
			b.Put(key(10), sealed(exit))
			b.Put(key(11), sealed(&runlogv1.Record{Seq: 11, Id: incID(old.Id), TimeUnixNano: old.TimeUnixNano}))
		}, wal.ProblemAfterExit, 11, 10, 11},
		{"seq mismatch", func(t *testing.T, b *bolt.Bucket) {
			var r runlogv1.Record
			proto.Unmarshal(b.Get(key(3))[4:], &r)
			r.Seq = 33
			b.Put(key(3), sealed(&r))
		}, wal.ProblemSeq, 3, 2, 10},
		{"ULID not increasing", func(t *testing.T, b *bolt.Bucket) {
			var r, prev runlogv1.Record
			proto.Unmarshal(b.Get(key(5))[4:], &r)
			proto.Unmarshal(b.Get(key(4))[4:], &prev)
			r.Id = prev.Id
			b.Put(key(5), sealed(&r))
		}, wal.ProblemULID, 5, 4, 10},
		{"time going back", func(t *testing.T, b *bolt.Bucket) {
			var r runlogv1.Record
			proto.Unmarshal(b.Get(key(8))[4:], &r)
			r.TimeUnixNano -= int64(time.Hour)
			b.Put(key(8), sealed(&r))
		}, wal.ProblemTime, 8, 7, 10},
		{"damaged last record", func(t *testing.T, b *bolt.Bucket) {
			v := append([]byte(nil), b.Get(key(10))...)
			v[len(v)-1] ^= 0xff
			b.Put(key(10), v)
		}, wal.ProblemChecksum, 10, 9, 9},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "wal.bolt")
			l, err := wal.Open(path, wal.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Append(waltest.History(0, 10, 2)); err != nil {
				t.Fatal(err)
			}
			l.Close()
			damage(t, path, func(b *bolt.Bucket) { tc.damage(t, b) })
			l, err = wal.Open(path, wal.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			var kinds []string
			res, err := l.Verify(wal.VerifyOptions{}, func(p wal.Problem) { kinds = append(kinds, p.Kind) })
			if err != nil {
				t.Fatal(err)
			}
			if len(kinds) == 0 || kinds[0] != tc.kind {
				t.Fatalf("problems %v, want first %q", kinds, tc.kind)
			}
			if res.FirstBad != tc.firstBad || res.LastGood != tc.lastGood {
				t.Fatalf("first bad %d last good %d, want %d %d", res.FirstBad, res.LastGood, tc.firstBad, tc.lastGood)
			}
			// A scan stops at a checksum failure or a missing record with a
			// typed error naming the seq, after every record before it. It
			// checks nothing else: other damage is Verify's to find, and it
			// reads on.
			n := 0
			err = l.Scan(1, func(uint64, []byte) error { n++; return nil })
			if tc.kind == wal.ProblemChecksum || tc.kind == wal.ProblemGap {
				var ce *wal.CorruptError
				if !errors.As(err, &ce) || ce.Seq != tc.firstBad || ce.Path != path || n != tc.scanned {
					t.Fatalf("scan read %d records then %v, want %d then a CorruptError at seq %d of %s", n, err, tc.scanned, tc.firstBad, path)
				}
			} else if err != nil || n != tc.scanned {
				t.Fatalf("scan read %d records then %v, want %d and no error", n, err, tc.scanned)
			}
		})
	}
}

func sealed(r *runlogv1.Record) []byte {
	data, _ := proto.Marshal(r)
	return wire.AppendFrame(nil, data)
}

func incID(id []byte) []byte {
	out := append([]byte(nil), id...)
	out[15]++
	return out
}

func TestEntropyMakesIDsReproducible(t *testing.T) {
	ids := func() [][]byte {
		path := filepath.Join(t.TempDir(), "wal.bolt")
		clock := time.Date(2026, 11, 27, 16, 42, 13, 0, time.UTC)
		l, err := wal.Open(path, wal.Options{
			Now:     func() time.Time { clock = clock.Add(time.Millisecond); return clock },
			Entropy: rand.NewPCG(1, 2),
		})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		for range 3 {
			if err := l.Append(waltest.History(0, 2, 1)); err != nil {
				t.Fatal(err)
			}
		}
		recs, err := l.Read(1, 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		var out [][]byte
		for _, r := range recs {
			out = append(out, r.Id)
		}
		return out
	}
	a, b := ids(), ids()
	if len(a) != 6 {
		t.Fatalf("%d ids, want 6", len(a))
	}
	for i := range a {
		if string(a[i]) != string(b[i]) {
			t.Fatalf("id %d differs between runs with the same entropy: %x, %x", i, a[i], b[i])
		}
	}
}

func TestSizeIsSpaceUsed(t *testing.T) {
	l := waltest.Open(t)
	if err := l.Append(waltest.History(0, 50, 2)); err != nil {
		t.Fatal(err)
	}
	size, err := l.Size()
	if err != nil {
		t.Fatal(err)
	}
	// 50 small records take a few pages, far less than the 16 MiB step by
	// which bbolt may have grown the file.
	if size <= 0 || size >= 1<<20 {
		t.Fatalf("Size = %d bytes for 50 small records", size)
	}
}

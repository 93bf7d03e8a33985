package store_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/store"
	"github.com/runlog/runlog/store/storetest"
)

func TestSecondOpenIsLocked(t *testing.T) {
	dir := t.TempDir()
	storetest.OpenDir(t, dir)
	_, err := store.Open(dir, store.Options{LockTimeout: 50e6})
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
}

func TestRecordsReportsCorruption(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	recs := storetest.Records(t, storetest.Run{Rows: 20, Keys: 1})
	s, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "r", recs); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// Flip a byte of record 7 behind the store's back.
	db, err := bolt.Open(filepath.Join(dir, store.FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("runs")).Bucket([]byte("r")).Bucket([]byte("records"))
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], 7)
		v := append([]byte(nil), b.Get(k[:])...)
		v[len(v)-1] ^= 0xff
		return b.Put(k[:], v)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	s = storetest.OpenDir(t, dir)
	var n int
	err = s.Records(ctx, "r", 1, func(uint64, []byte) error { n++; return nil })
	var ce *store.CorruptError
	if !errors.As(err, &ce) || ce.Seq != 7 || n != 6 {
		t.Fatalf("read damaged run: %d records then %v; want 6 then a CorruptError at seq 7", n, err)
	}
}

// TestConcurrentRunsShareCommits appends 16 runs at once, each from its own
// goroutine with one Append in flight at a time, and checks that the writer
// put several of them into one transaction: more Append calls than commits
// can only come from calls of different runs sharing a commit.
func TestConcurrentRunsShareCommits(t *testing.T) {
	ctx := context.Background()
	s := storetest.Open(t)
	recs := storetest.Records(t, storetest.Run{Rows: 500, Keys: 2, Exit: &runlogv1.Exit{Reason: runlogv1.ExitReason_EXIT_REASON_FINISHED}})
	const runs = 16
	var wg sync.WaitGroup
	errs := make(chan error, runs)
	for r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("run-%02d", r)
			for i := 0; i < len(recs); i += 37 {
				if _, err := s.Append(ctx, id, recs[i:min(i+37, len(recs))]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	calls := runs * ((len(recs) + 36) / 37)
	st := s.Stats()
	if st.Appends != uint64(calls) || st.Records != uint64(runs*len(recs)) {
		t.Fatalf("stats %+v: want %d appends of %d records in all", st, calls, runs*len(recs))
	}
	if st.Commits == 0 || st.Appends <= st.Commits {
		t.Fatalf("%d appends in %d commits: no commit carried more than one run's append", st.Appends, st.Commits)
	}
	t.Logf("%d appends in %d commits (%.1f per commit)", st.Appends, st.Commits, float64(st.Appends)/float64(st.Commits))
	list, err := s.ListRuns(ctx, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != runs {
		t.Fatalf("listed %d runs, want %d", len(list), runs)
	}
	for i, e := range list {
		if want := fmt.Sprintf("run-%02d", i); e.GetRunId() != want {
			t.Fatalf("run %d is %s, want %s (ordered by id)", i, e.GetRunId(), want)
		}
		if e.GetHighWater() != uint64(len(recs)) || !bytes.Equal(e.GetDigest(), storetest.Digest(recs)) {
			t.Fatalf("%s: high water %d, digest match %v", e.GetRunId(), e.GetHighWater(), bytes.Equal(e.GetDigest(), storetest.Digest(recs)))
		}
	}
}

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
	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/store"
	"github.com/runlog/runlog/store/storetest"
)

var finished = &runlogv1.Exit{Reason: runlogv1.ExitReason_EXIT_REASON_FINISHED}

// stored reads back every record of a run.
func stored(t *testing.T, s store.Store, runID string) [][]byte {
	t.Helper()
	var out [][]byte
	var want uint64 = 1
	err := s.Records(context.Background(), runID, 1, func(seq uint64, data []byte) error {
		if seq != want {
			return fmt.Errorf("record seq %d, want %d", seq, want)
		}
		want++
		out = append(out, append([]byte(nil), data...))
		return nil
	})
	if err != nil {
		t.Fatalf("read records of %s: %v", runID, err)
	}
	return out
}

func sameRecords(t *testing.T, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("store holds %d records, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("record %d differs from what was sent", i+1)
		}
	}
}

func TestAppendIsIdempotentBySeq(t *testing.T) {
	ctx := context.Background()
	recs := storetest.Records(t, storetest.Run{Project: "p", Rows: 100, Keys: 3, Exit: finished})
	n := uint64(len(recs)) // 2 head records + 100 rows + exit

	tests := []struct {
		name    string
		batches [][2]int // [from, to) indexes into recs, in order
	}{
		{"in order", [][2]int{{0, 50}, {50, 103}}},
		{"one record at a time", func() [][2]int {
			var b [][2]int
			for i := range 103 {
				b = append(b, [2]int{i, i + 1})
			}
			return b
		}()},
		{"whole batch resent", [][2]int{{0, 50}, {0, 50}, {50, 103}, {50, 103}}},
		{"overlapping resends", [][2]int{{0, 30}, {10, 60}, {59, 103}, {0, 103}}},
		{"duplicates only at the end", [][2]int{{0, 103}, {100, 103}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := storetest.Open(t)
			var hw uint64
			for _, b := range tc.batches {
				got, err := s.Append(ctx, "run-1", recs[b[0]:b[1]])
				if err != nil {
					t.Fatalf("append [%d,%d): %v", b[0], b[1], err)
				}
				if want := max(hw, uint64(b[1])); got != want {
					t.Fatalf("append [%d,%d): high water %d, want %d", b[0], b[1], got, want)
				}
				hw = got
			}
			if hw != n {
				t.Fatalf("high water %d, want %d", hw, n)
			}
			sameRecords(t, stored(t, s, "run-1"), recs)
			run, state, err := s.Run(ctx, "run-1")
			if err != nil {
				t.Fatal(err)
			}
			if run.GetHighWater() != n || state.GetRecords() != n || state.GetLastSeq() != n {
				t.Fatalf("run: high water %d, state records %d last seq %d; want %d",
					run.GetHighWater(), state.GetRecords(), state.GetLastSeq(), n)
			}
			if state.GetStatus() != runlogv1.RunStatus_RUN_STATUS_FINISHED || run.GetStatus() != state.GetStatus() {
				t.Fatalf("status %v / %v, want finished", run.GetStatus(), state.GetStatus())
			}
			if state.GetHistoryRows() != 100 || state.GetLastStep() != 99 || run.GetLastStep() != 99 {
				t.Fatalf("history rows %d last step %d", state.GetHistoryRows(), state.GetLastStep())
			}
			if run.GetProject() != "p" || run.GetName() != "generated" {
				t.Fatalf("index entry project %q name %q", run.GetProject(), run.GetName())
			}
			if !bytes.Equal(run.GetDigest(), storetest.Digest(recs)) {
				t.Fatalf("digest %x, want %x", run.GetDigest(), storetest.Digest(recs))
			}
		})
	}
}

func TestAppendRefusesGap(t *testing.T) {
	ctx := context.Background()
	s := storetest.Open(t)
	recs := storetest.Records(t, storetest.Run{Rows: 20, Keys: 1})
	if _, err := s.Append(ctx, "r", recs[:10]); err != nil {
		t.Fatal(err)
	}
	hw, err := s.Append(ctx, "r", recs[12:])
	var gap *store.GapError
	if !errors.As(err, &gap) || !errors.Is(err, store.ErrGap) {
		t.Fatalf("append after a gap: %v, want a GapError", err)
	}
	if hw != 10 || gap.HighWater != 10 || gap.Seq != 13 {
		t.Fatalf("gap: returned %d, error says mark %d at seq %d; want 10 and 13", hw, gap.HighWater, gap.Seq)
	}
	// A gap inside a batch keeps the records before it.
	batch := append(append([][]byte{}, recs[10:11]...), recs[15:]...)
	hw, err = s.Append(ctx, "r", batch)
	if !errors.As(err, &gap) || hw != 11 || gap.Seq != 16 {
		t.Fatalf("gap inside a batch: mark %d, %v; want 11 and a gap at 16", hw, err)
	}
	// A new run must start at 1.
	if _, err := s.Append(ctx, "new", recs[1:3]); !errors.Is(err, store.ErrGap) {
		t.Fatalf("new run from seq 2: %v, want a gap", err)
	}
	if _, _, err := s.Run(ctx, "new"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused new run: Run says %v, want ErrNotFound", err)
	}
	hw, err = s.Append(ctx, "r", recs[11:])
	if err != nil || hw != uint64(len(recs)) {
		t.Fatalf("rewound append: %d, %v", hw, err)
	}
	sameRecords(t, stored(t, s, "r"), recs)
}

func TestAppendStopsAtBadRecord(t *testing.T) {
	ctx := context.Background()
	recs := storetest.Records(t, storetest.Run{Rows: 10, Keys: 1, Exit: finished})
	n := len(recs)

	tests := []struct {
		name    string
		batch   [][]byte
		wantHW  uint64
		wantSeq uint64 // seq named by the RecordError, 0 when unreadable
	}{
		{"garbage", append(append([][]byte{}, recs[:5]...), []byte{0xff, 0xff, 0xff}), 5, 0},
		{"no seq", append(append([][]byte{}, recs[:3]...), mustMarshal(t, &runlogv1.Record{ClientId: "x"})), 3, 0},
		{"after exit", append(append([][]byte{}, recs...), mustMarshal(t, &runlogv1.Record{Seq: uint64(n + 1)})), uint64(n), uint64(n + 1)},
		{"payload does not decode", append(append([][]byte{}, recs[:4]...), append(mustMarshal(t, &runlogv1.Record{Seq: 5}), 0x52, 0x02, 0x0a, 0x05)), 4, 5},
		// Rows and stats are checked without building their items; a key
		// that is not UTF-8 must still be refused, or readers of the run
		// would fail on it later.
		{"history key not UTF-8", append(append([][]byte{}, recs[:4]...), append(mustMarshal(t, &runlogv1.Record{Seq: 5}), 0x62, 0x07, 0x08, 0x03, 0x12, 0x03, 0x0a, 0x01, 0xff)), 4, 5},
		{"stats key not UTF-8", append(append([][]byte{}, recs[:6]...), append(mustMarshal(t, &runlogv1.Record{Seq: 7}), 0x82, 0x01, 0x05, 0x0a, 0x03, 0x0a, 0x01, 0xc3)), 6, 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := storetest.Open(t)
			hw, err := s.Append(ctx, "r", tc.batch)
			var re *store.RecordError
			if !errors.As(err, &re) || !errors.Is(err, store.ErrBadRecord) {
				t.Fatalf("append: %v, want a RecordError", err)
			}
			if hw != tc.wantHW || re.Seq != tc.wantSeq {
				t.Fatalf("mark %d, error at seq %d (%v); want mark %d, seq %d", hw, re.Seq, err, tc.wantHW, tc.wantSeq)
			}
			if got := stored(t, s, "r"); len(got) != int(tc.wantHW) {
				t.Fatalf("store holds %d records, want the %d before the bad one", len(got), tc.wantHW)
			}
		})
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReopenResumesStateAndDigest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	recs := storetest.Records(t, storetest.Run{Project: "p", Rows: 50, Keys: 2, Exit: finished})
	s, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "r", recs[:20]); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "r", recs[20:]); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("append after close: %v, want ErrClosed", err)
	}
	s = storetest.OpenDir(t, dir)
	if hw, err := s.HighWater(ctx, "r"); err != nil || hw != 20 {
		t.Fatalf("high water after reopen: %d, %v", hw, err)
	}
	if hw, err := s.Append(ctx, "r", recs[10:]); err != nil || hw != uint64(len(recs)) {
		t.Fatalf("append after reopen: %d, %v", hw, err)
	}
	run, state, err := s.Run(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(run.GetDigest(), storetest.Digest(recs)) {
		t.Fatal("digest after reopen differs from the digest of the records")
	}
	if state.GetHistoryRows() != 50 || state.GetRecords() != uint64(len(recs)) || len(state.GetConfig()) != 1 {
		t.Fatalf("state after reopen: %v", state)
	}
	sameRecords(t, stored(t, s, "r"), recs)
}

// TestConcurrentRunsShareCommits appends 16 runs at once, each from its own
// goroutine with one Append in flight at a time, and checks that the writer
// put several of them into one transaction: more Append calls than commits
// can only come from calls of different runs sharing a commit.
func TestConcurrentRunsShareCommits(t *testing.T) {
	ctx := context.Background()
	s := storetest.Open(t)
	recs := storetest.Records(t, storetest.Run{Rows: 500, Keys: 2, Exit: finished})
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

func TestListRunsFiltersByProject(t *testing.T) {
	ctx := context.Background()
	s := storetest.Open(t)
	for i, p := range []string{"a", "b", "a"} {
		recs := storetest.Records(t, storetest.Run{Project: p, Rows: 1, Keys: 1})
		if _, err := s.Append(ctx, fmt.Sprintf("r%d", i), recs); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.ListRuns(ctx, store.ListOptions{Project: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].GetRunId() != "r0" || list[1].GetRunId() != "r2" {
		t.Fatalf("project a lists %v", list)
	}
}

func TestHistoryQueries(t *testing.T) {
	ctx := context.Background()
	s := storetest.Open(t)
	// 100 rows at steps 0..99, a rewind to step 50, then rows 50..59 again.
	recs := storetest.Records(t, storetest.Run{Rows: 100, Keys: 3})
	if _, err := s.Append(ctx, "r", recs); err != nil {
		t.Fatal(err)
	}
	seq := uint64(len(recs))
	var tail [][]byte
	seq++
	tail = append(tail, mustMarshal(t, &runlogv1.Record{Seq: seq, Payload: &runlogv1.Record_Rewind{Rewind: &runlogv1.Rewind{Step: 50}}}))
	for step := int64(50); step < 60; step++ {
		seq++
		tail = append(tail, mustMarshal(t, &runlogv1.Record{Seq: seq, Payload: &runlogv1.Record_History{History: &runlogv1.HistoryRow{
			Step:  step,
			Items: []*runlogv1.Item{{Key: "metric/0", Value: &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: -1}}}},
		}}}))
	}
	if _, err := s.Append(ctx, "r", tail); err != nil {
		t.Fatal(err)
	}

	steps := func(q store.HistoryQuery) (out []int64, keys int) {
		t.Helper()
		err := s.History(ctx, "r", q, func(h *runlogv1.HistorySample) error {
			out = append(out, h.GetStep())
			keys += len(h.GetItems())
			return nil
		})
		if err != nil {
			t.Fatalf("history %+v: %v", q, err)
		}
		return out, keys
	}
	all, keys := steps(store.HistoryQuery{})
	if len(all) != 60 || all[49] != 49 || all[50] != 50 || all[59] != 59 {
		t.Fatalf("live rows: %d, %v", len(all), all)
	}
	if keys != 50*3+10 {
		t.Fatalf("items: %d, want %d (rewound rows dropped)", keys, 50*3+10)
	}
	got, keys := steps(store.HistoryQuery{Keys: []string{"metric/2"}})
	if len(got) != 50 || keys != 50 {
		t.Fatalf("key metric/2: %d rows, %d items; want 50 (the rows after the rewind lack it)", len(got), keys)
	}
	got, _ = steps(store.HistoryQuery{MinStep: 10, MaxStep: 19, HasMaxStep: true})
	if len(got) != 10 || got[0] != 10 || got[9] != 19 {
		t.Fatalf("steps 10..19: %v", got)
	}
	got, _ = steps(store.HistoryQuery{MinStep: 55})
	if len(got) != 5 || got[0] != 55 {
		t.Fatalf("steps from 55: %v", got)
	}
	got, _ = steps(store.HistoryQuery{MaxSamples: 7})
	if len(got) != 7 || got[6] != 59 || got[0] != 0 {
		t.Fatalf("7 samples: %v (want 7, first 0, last 59)", got)
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("samples out of order: %v", got)
		}
	}
	got, _ = steps(store.HistoryQuery{MinStep: 10, MaxStep: 39, HasMaxStep: true, MaxSamples: 4})
	if len(got) != 4 || got[0] != 10 || got[3] != 39 || got[1] <= 10 || got[2] <= got[1] || got[2] >= 39 {
		t.Fatalf("4 samples of steps 10..39: %v", got)
	}
	got, _ = steps(store.HistoryQuery{MaxSamples: 1000})
	if len(got) != 60 {
		t.Fatalf("more samples than rows: %d rows, want 60", len(got))
	}
	if err := s.History(ctx, "nope", store.HistoryQuery{}, func(*runlogv1.HistorySample) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("history of an unknown run: %v", err)
	}
}

func TestRejectsBadRunID(t *testing.T) {
	s := storetest.Open(t)
	for _, id := range []string{"", "../x", "a/b", ".hidden", string(make([]byte, 129))} {
		if _, err := s.Append(context.Background(), id, nil); !errors.Is(err, store.ErrBadRunID) {
			t.Errorf("run id %q: %v, want ErrBadRunID", id, err)
		}
	}
}

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

func TestAppendRefusesAnotherRunWithTheSameID(t *testing.T) {
	ctx := context.Background()
	s := storetest.Open(t)
	first := storetest.Records(t, storetest.Run{Rows: 20, Keys: 1})
	other := storetest.Records(t, storetest.Run{Rows: 30, Keys: 1})
	if bytes.Equal(first[9], other[9]) {
		t.Fatal("two generated runs share a record at seq 10")
	}
	if _, err := s.Append(ctx, "r", first[:10]); err != nil {
		t.Fatal(err)
	}
	// The same bytes at stored seqs are a resend: skipped, the rest stored.
	hw, err := s.Append(ctx, "r", first[5:12])
	if err != nil || hw != 12 {
		t.Fatalf("resend from seq 6: mark %d, %v; want 12", hw, err)
	}

	tests := []struct {
		name  string
		batch [][]byte
		seq   uint64
	}{
		{"at the mark", other[11:20], 12},
		{"below the mark", other[3:5], 4},
		{"mark alone", other[11:12], 12},
		// The first record is the resend; the second differs.
		{"after an equal one", append([][]byte{first[10]}, other[11:15]...), 12},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hw, err := s.Append(ctx, "r", tc.batch)
			var mm *store.MismatchError
			if !errors.As(err, &mm) || !errors.Is(err, store.ErrMismatch) {
				t.Fatalf("append of another run: %v, want a MismatchError", err)
			}
			if mm.RunID != "r" || mm.Seq != tc.seq || hw != 12 {
				t.Fatalf("mismatch: run %q seq %d, mark %d; want r, %d, 12", mm.RunID, mm.Seq, hw, tc.seq)
			}
		})
	}
	// Nothing of the refused appends was stored.
	sameRecords(t, stored(t, s, "r"), first[:12])
	run, _, err := s.Run(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if run.GetHighWater() != 12 || !bytes.Equal(run.GetDigest(), storetest.Digest(first[:12])) {
		t.Fatalf("after refusals: mark %d digest %x; want 12 and %x", run.GetHighWater(), run.GetDigest(), storetest.Digest(first[:12]))
	}
	// The run itself goes on.
	if hw, err := s.Append(ctx, "r", first[11:]); err != nil || hw != uint64(len(first)) {
		t.Fatalf("append of the run from its mark: %d, %v", hw, err)
	}
	sameRecords(t, stored(t, s, "r"), first)
}

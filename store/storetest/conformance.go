package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/rollup"
	"github.com/runlog/runlog/store"
)

// Store is what the conformance suite checks: the Store interface and the
// queries the hub's web UI makes of its store.
type Store interface {
	store.Store
	Chart(ctx context.Context, runID string, q rollup.Query) (*rollup.Result, error)
	Changed() <-chan struct{}
}

// Backend opens stores of one implementation for the conformance suite.
type Backend struct {
	// Fresh returns a function that opens one new, empty store: its first
	// call creates the store, later calls open the same store again (after
	// the caller closed the previous one). Stores it opens are closed on
	// cleanup; Close twice is harmless.
	Fresh func(t testing.TB) func() Store
	// Shared, when set, opens a second handle on the store of a handle it
	// is given, as a second hub process on the same database would. Nil for
	// a backend that one process holds alone.
	Shared func(t testing.TB, s Store) Store
}

// Open opens a new, empty store.
func (b Backend) Open(t testing.TB) Store { return b.Fresh(t)() }

// Conformance runs every test of the suite against b. A backend conforms
// only if it passes all of them.
func Conformance(t *testing.T, b Backend) {
	tests := []struct {
		name string
		fn   func(*testing.T, Backend)
	}{
		{"AppendIsIdempotentBySeq", testAppendIsIdempotentBySeq},
		{"AppendRefusesGap", testAppendRefusesGap},
		{"AppendStopsAtBadRecord", testAppendStopsAtBadRecord},
		{"ReopenResumesStateAndDigest", testReopenResumesStateAndDigest},
		{"ConcurrentRuns", testConcurrentRunsShareCommits},
		{"ConcurrentAppendsOfOneRun", testConcurrentAppendsOfOneRun},
		{"ListRunsFiltersByProject", testListRunsFiltersByProject},
		{"HistoryQueries", testHistoryQueries},
		{"HistoryRewindInOneBatch", testHistoryRewindInOneBatch},
		{"RejectsBadRunID", testRejectsBadRunID},
		{"AppendRefusesAnotherRunWithTheSameID", testAppendRefusesAnotherRunWithTheSameID},
		{"ChartFromTiers", testChartFromTiers},
		{"ChartAfterRewindReadsRecords", testChartAfterRewindReadsRecords},
		{"ChangedWakesOnCommit", testChangedWakesOnCommit},
		{"UnknownRun", testUnknownRun},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, b) })
	}
}

var finished = &runlogv1.Exit{Reason: runlogv1.ExitReason_EXIT_REASON_FINISHED}

func stored(t testing.TB, s store.Store, runID string) [][]byte {
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

func sameRecords(t testing.TB, got, want [][]byte) {
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

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testAppendIsIdempotentBySeq(t *testing.T, b Backend) {
	ctx := context.Background()
	recs := Records(t, Run{Project: "p", Rows: 100, Keys: 3, Exit: finished})
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
			s := b.Open(t)
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
			if !bytes.Equal(run.GetDigest(), Digest(recs)) {
				t.Fatalf("digest %x, want %x", run.GetDigest(), Digest(recs))
			}
		})
	}
}

func testAppendRefusesGap(t *testing.T, b Backend) {
	ctx := context.Background()
	s := b.Open(t)
	recs := Records(t, Run{Rows: 20, Keys: 1})
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

func testAppendStopsAtBadRecord(t *testing.T, b Backend) {
	ctx := context.Background()
	recs := Records(t, Run{Rows: 10, Keys: 1, Exit: finished})
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
			s := b.Open(t)
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

func testReopenResumesStateAndDigest(t *testing.T, b Backend) {
	ctx := context.Background()
	recs := Records(t, Run{Project: "p", Rows: 50, Keys: 2, Exit: finished})
	open := b.Fresh(t)
	s := open()
	if _, err := s.Append(ctx, "r", recs[:20]); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "r", recs[20:]); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("append after close: %v, want ErrClosed", err)
	}
	s = open()
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
	if !bytes.Equal(run.GetDigest(), Digest(recs)) {
		t.Fatal("digest after reopen differs from the digest of the records")
	}
	if state.GetHistoryRows() != 50 || state.GetRecords() != uint64(len(recs)) || len(state.GetConfig()) != 1 {
		t.Fatalf("state after reopen: %v", state)
	}
	sameRecords(t, stored(t, s, "r"), recs)
}

func testConcurrentRunsShareCommits(t *testing.T, b Backend) {
	ctx := context.Background()
	s := b.Open(t)
	recs := Records(t, Run{Rows: 500, Keys: 2, Exit: finished})
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
		if e.GetHighWater() != uint64(len(recs)) || !bytes.Equal(e.GetDigest(), Digest(recs)) {
			t.Fatalf("%s: high water %d, digest match %v", e.GetRunId(), e.GetHighWater(), bytes.Equal(e.GetDigest(), Digest(recs)))
		}
	}
}

func testListRunsFiltersByProject(t *testing.T, b Backend) {
	ctx := context.Background()
	s := b.Open(t)
	for i, p := range []string{"a", "b", "a"} {
		recs := Records(t, Run{Project: p, Rows: 1, Keys: 1})
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

func testHistoryQueries(t *testing.T, b Backend) {
	ctx := context.Background()
	s := b.Open(t)
	// 100 rows at steps 0..99, a rewind to step 50, then rows 50..59 again.
	recs := Records(t, Run{Rows: 100, Keys: 3})
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

func testRejectsBadRunID(t *testing.T, b Backend) {
	s := b.Open(t)
	for _, id := range []string{"", "../x", "a/b", ".hidden", string(make([]byte, 129))} {
		if _, err := s.Append(context.Background(), id, nil); !errors.Is(err, store.ErrBadRunID) {
			t.Errorf("run id %q: %v, want ErrBadRunID", id, err)
		}
	}
}

func testAppendRefusesAnotherRunWithTheSameID(t *testing.T, b Backend) {
	ctx := context.Background()
	s := b.Open(t)
	first := Records(t, Run{Rows: 20, Keys: 1})
	other := Records(t, Run{Rows: 30, Keys: 1})
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
	if run.GetHighWater() != 12 || !bytes.Equal(run.GetDigest(), Digest(first[:12])) {
		t.Fatalf("after refusals: mark %d digest %x; want 12 and %x", run.GetHighWater(), run.GetDigest(), Digest(first[:12]))
	}
	// The run itself goes on.
	if hw, err := s.Append(ctx, "r", first[11:]); err != nil || hw != uint64(len(first)) {
		t.Fatalf("append of the run from its mark: %d, %v", hw, err)
	}
	sameRecords(t, stored(t, s, "r"), first)
}

func testChartFromTiers(t *testing.T, b Backend) {
	ctx := context.Background()
	open := b.Fresh(t)
	s := open()
	recs := Records(t, Run{Rows: 50000, Keys: 3})
	// In several appends, so that the partial blocks cross commits, and
	// across a reopen, so that they are read back from disk.
	for i := 0; i < 28000; i += 7000 {
		if _, err := s.Append(ctx, "r", recs[i:i+7000]); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open()
	if _, err := s.Append(ctx, "r", recs[28000:]); err != nil {
		t.Fatal(err)
	}
	check := func(s Store) {
		t.Helper()
		res, err := s.Chart(ctx, "r", rollup.Query{Points: 400})
		if err != nil {
			t.Fatal(err)
		}
		if res.Level < 0 || len(res.Series) != 3 || res.FirstStep != 0 || res.LastStep != 49999 {
			t.Fatalf("level %d, %d series, steps %d..%d", res.Level, len(res.Series), res.FirstStep, res.LastStep)
		}
		m2 := res.Series["metric/1"]
		if last := m2.Values[len(m2.Values)-1]; last != 49999*2 {
			t.Fatalf("metric/1 ends at %v, want %v", last, 49999*2)
		}
		// A zoom into 300 steps is answered row by row.
		res, err = s.Chart(ctx, "r", rollup.Query{Points: 400, MinStep: 1000, MaxStep: 1299, HasMin: true, HasMax: true, Keys: []string{"metric/0"}})
		if err != nil {
			t.Fatal(err)
		}
		m0 := res.Series["metric/0"]
		if !res.Exact || len(m0.Steps) != 300 || m0.Steps[0] != 1000 || m0.Values[299] != 1299 || len(res.Series) != 1 {
			t.Fatalf("zoom: exact %v, %d points", res.Exact, len(m0.Steps))
		}
	}
	check(s)
	res, err := s.Chart(ctx, "r", rollup.Query{Points: 100, MinStep: 49950, HasMin: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.Series["metric/2"].Steps); n != 50 {
		t.Fatalf("tail: %d points, want 50", n)
	}
}

func testChartAfterRewindReadsRecords(t *testing.T, b Backend) {
	ctx := context.Background()
	s := b.Open(t)
	recs := Records(t, Run{Rows: 100, Keys: 2})
	seq := uint64(len(recs))
	seq++
	recs = append(recs, mustMarshal(t, &runlogv1.Record{Seq: seq, Payload: &runlogv1.Record_Rewind{Rewind: &runlogv1.Rewind{Step: 50}}}))
	for step := int64(50); step < 60; step++ {
		seq++
		recs = append(recs, mustMarshal(t, &runlogv1.Record{Seq: seq, Payload: &runlogv1.Record_History{History: &runlogv1.HistoryRow{
			Step:  step,
			Items: []*runlogv1.Item{{Key: "metric/0", Value: &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: -1}}}},
		}}}))
	}
	if _, err := s.Append(ctx, "r", recs); err != nil {
		t.Fatal(err)
	}
	res, err := s.Chart(ctx, "r", rollup.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.Series["metric/0"].Steps); n != 60 || res.Series["metric/0"].Values[59] != -1 {
		t.Fatalf("metric/0: %d points, want the 60 live rows", n)
	}
	if n := len(res.Series["metric/1"].Steps); n != 50 {
		t.Fatalf("metric/1: %d points, want 50", n)
	}
}

// testConcurrentAppendsOfOneRun sends one run from several goroutines at
// once, each from the mark it last saw, through two handles where the
// backend has them (two hubs on one database): the run ends with each
// record exactly once.
func testConcurrentAppendsOfOneRun(t *testing.T, b Backend) {
	ctx := context.Background()
	s := b.Open(t)
	handles := []Store{s}
	if b.Shared != nil {
		handles = append(handles, b.Shared(t, s))
	}
	recs := Records(t, Run{Rows: 3000, Keys: 2, Exit: finished})
	n := uint64(len(recs))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 6 {
		h := handles[g%len(handles)]
		size := 50 + 37*g
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				hw, err := h.HighWater(ctx, "r")
				if err != nil {
					errs <- err
					return
				}
				if hw == n {
					return
				}
				from := hw - min(hw, uint64(g)) // resend a few below the mark
				got, err := h.Append(ctx, "r", recs[from:min(from+uint64(size), n)])
				if err != nil {
					errs <- fmt.Errorf("append from seq %d: %w", from+1, err)
					return
				}
				if got < min(from+uint64(size), n) {
					errs <- fmt.Errorf("append up to seq %d returned mark %d", min(from+uint64(size), n), got)
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
	sameRecords(t, stored(t, s, "r"), recs)
	run, state, err := s.Run(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if run.GetHighWater() != n || state.GetHistoryRows() != 3000 || !bytes.Equal(run.GetDigest(), Digest(recs)) {
		t.Fatalf("mark %d, rows %d, digest match %v", run.GetHighWater(), state.GetHistoryRows(), bytes.Equal(run.GetDigest(), Digest(recs)))
	}
}

// testHistoryRewindInOneBatch stores rows, a rewind and the rows after it
// in one append.
func testHistoryRewindInOneBatch(t *testing.T, b Backend) {
	ctx := context.Background()
	s := b.Open(t)
	recs := Records(t, Run{Rows: 100, Keys: 2})
	seq := uint64(len(recs))
	seq++
	recs = append(recs, mustMarshal(t, &runlogv1.Record{Seq: seq, Payload: &runlogv1.Record_Rewind{Rewind: &runlogv1.Rewind{Step: 80}}}))
	for step := int64(80); step < 90; step++ {
		seq++
		recs = append(recs, mustMarshal(t, &runlogv1.Record{Seq: seq, Payload: &runlogv1.Record_History{History: &runlogv1.HistoryRow{
			Step:  step,
			Items: []*runlogv1.Item{{Key: "metric/0", Value: &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: -1}}}},
		}}}))
	}
	seq++
	recs = append(recs, mustMarshal(t, &runlogv1.Record{Seq: seq, Payload: &runlogv1.Record_Rewind{Rewind: &runlogv1.Rewind{Step: 40}}}))
	for step := int64(40); step < 45; step++ {
		seq++
		recs = append(recs, mustMarshal(t, &runlogv1.Record{Seq: seq, Payload: &runlogv1.Record_History{History: &runlogv1.HistoryRow{
			Step:  step,
			Items: []*runlogv1.Item{{Key: "metric/1", Value: &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: -2}}}},
		}}}))
	}
	// Half in one append, the rest (both rewinds) in another.
	if _, err := s.Append(ctx, "r", recs[:60]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "r", recs[60:]); err != nil {
		t.Fatal(err)
	}
	var steps []int64
	var last *runlogv1.HistorySample
	err := s.History(ctx, "r", store.HistoryQuery{}, func(h *runlogv1.HistorySample) error {
		steps = append(steps, h.GetStep())
		last = h
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 45 || steps[39] != 39 || steps[40] != 40 || steps[44] != 44 {
		t.Fatalf("live rows: %d, %v; want steps 0..44", len(steps), steps)
	}
	if len(last.GetItems()) != 1 || last.GetItems()[0].GetValue().GetDoubleValue() != -2 {
		t.Fatalf("last row %v, want the row written after the second rewind", last)
	}
	res, err := s.Chart(ctx, "r", rollup.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.Series["metric/1"].Steps); n != 45 {
		t.Fatalf("chart metric/1: %d points, want 45", n)
	}
}

// testChangedWakesOnCommit waits for the channel of Changed after an append.
func testChangedWakesOnCommit(t *testing.T, b Backend) {
	ctx := context.Background()
	s := b.Open(t)
	recs := Records(t, Run{Rows: 10, Keys: 1})
	ch := s.Changed()
	if _, err := s.Append(ctx, "r", recs); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("Changed was not closed by a commit")
	}
	if b.Shared == nil {
		return
	}
	// A commit through another handle (another hub) wakes this one too.
	other := b.Shared(t, s)
	ch = s.Changed()
	more := Records(t, Run{Rows: 10, Keys: 1})
	if _, err := other.Append(ctx, "r2", more); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("Changed was not closed by another handle's commit")
	}
}

// testUnknownRun checks every query of a run the store has never seen.
func testUnknownRun(t *testing.T, b Backend) {
	ctx := context.Background()
	s := b.Open(t)
	if hw, err := s.HighWater(ctx, "nope"); err != nil || hw != 0 {
		t.Fatalf("high water of an unknown run: %d, %v", hw, err)
	}
	if _, _, err := s.Run(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Run: %v, want ErrNotFound", err)
	}
	if err := s.Records(ctx, "nope", 1, func(uint64, []byte) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Records: %v, want ErrNotFound", err)
	}
	if _, err := s.Chart(ctx, "nope", rollup.Query{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Chart: %v, want ErrNotFound", err)
	}
	if runs, err := s.ListRuns(ctx, store.ListOptions{}); err != nil || len(runs) != 0 {
		t.Fatalf("ListRuns of an empty store: %v, %v", runs, err)
	}
}

package replay

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

func dbl(v float64) *runlogv1.Value {
	return &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: v}}
}
func str(v string) *runlogv1.Value {
	return &runlogv1.Value{Kind: &runlogv1.Value_StringValue{StringValue: v}}
}
func i64(v int64) *runlogv1.Value {
	return &runlogv1.Value{Kind: &runlogv1.Value_IntValue{IntValue: v}}
}

func item(k string, v *runlogv1.Value) *runlogv1.Item { return &runlogv1.Item{Key: k, Value: v} }

func histRec(step int64) *runlogv1.Record {
	return &runlogv1.Record{Payload: &runlogv1.Record_History{History: &runlogv1.HistoryRow{
		Step: step, Items: []*runlogv1.Item{item("loss", dbl(1/float64(step+1)))},
	}}}
}

func rewindRec(step int64) *runlogv1.Record {
	return &runlogv1.Record{Payload: &runlogv1.Record_Rewind{Rewind: &runlogv1.Rewind{Step: step}}}
}

// stamp numbers records 1, 2, ... and gives them times a second apart.
func stamp(recs []*runlogv1.Record) []*runlogv1.Record {
	for i, r := range recs {
		r.Seq = uint64(i + 1)
		r.TimeUnixNano = int64(1_800_000_000+i) * 1e9
	}
	return recs
}

func TestStateApply(t *testing.T) {
	recs := stamp([]*runlogv1.Record{
		{Payload: &runlogv1.Record_Run{Run: &runlogv1.RunInfo{Project: "p", Name: "first", Tags: []string{"a"}, Host: "h1"}}},
		{Payload: &runlogv1.Record_Config{Config: &runlogv1.ConfigUpdate{Set: []*runlogv1.Item{item("lr", dbl(0.1)), item("opt", str("adam")), item("bs", i64(32))}}}},
		histRec(0),
		{Payload: &runlogv1.Record_Output{Output: &runlogv1.ConsoleOutput{Stream: runlogv1.ConsoleOutput_STREAM_STDOUT, Text: "hello\n"}}},
		{Payload: &runlogv1.Record_Config{Config: &runlogv1.ConfigUpdate{Set: []*runlogv1.Item{item("lr", dbl(0.01))}, Remove: []string{"opt"}}}},
		histRec(1),
		{Payload: &runlogv1.Record_Summary{Summary: &runlogv1.SummaryUpdate{Set: []*runlogv1.Item{item("best", dbl(0.5)), item("gone", dbl(1))}}}},
		{Payload: &runlogv1.Record_Summary{Summary: &runlogv1.SummaryUpdate{Remove: []string{"gone"}}}},
		{Payload: &runlogv1.Record_Run{Run: &runlogv1.RunInfo{Name: "second", Notes: "n"}}},
		{Payload: &runlogv1.Record_Output{Output: &runlogv1.ConsoleOutput{Stream: runlogv1.ConsoleOutput_STREAM_STDERR, Text: "oops"}}},
		{Payload: &runlogv1.Record_Exit{Exit: &runlogv1.Exit{Code: 1, Reason: runlogv1.ExitReason_EXIT_REASON_CRASHED, Message: "SIGSEGV"}}},
	})
	s := NewState("r1")
	if got := s.Status(); got != runlogv1.RunStatus_RUN_STATUS_UNSPECIFIED {
		t.Fatalf("empty status %v", got)
	}
	for i, r := range recs {
		s.Apply(r)
		if i == 0 && s.Status() != runlogv1.RunStatus_RUN_STATUS_RUNNING {
			t.Fatalf("status after first record %v", s.Status())
		}
	}
	// The state must not alias the records.
	recs[1].GetConfig().Set[2].Value.Kind = &runlogv1.Value_IntValue{IntValue: 99}
	recs[0].GetRun().Tags[0] = "changed"

	want := &runlogv1.RunState{
		RunId:  "r1",
		Info:   &runlogv1.RunInfo{Project: "p", Name: "second", Tags: []string{"a"}, Host: "h1", Notes: "n"},
		Status: runlogv1.RunStatus_RUN_STATUS_CRASHED,
		Config: []*runlogv1.Item{item("bs", i64(32)), item("lr", dbl(0.01))},
		Summary: []*runlogv1.Item{
			item("best", dbl(0.5)),
		},
		HistoryRows:       2,
		LastStep:          1,
		LastSeq:           11,
		Exit:              &runlogv1.Exit{Code: 1, Reason: runlogv1.ExitReason_EXIT_REASON_CRASHED, Message: "SIGSEGV"},
		StartTimeUnixNano: 1_800_000_000e9,
		LastTimeUnixNano:  1_800_000_010e9,
		Records:           11,
	}
	if got := s.Proto(); !proto.Equal(got, want) {
		t.Fatalf("state\n got %v\nwant %v", got, want)
	}
	if s.Count(KindOutput) != 2 || s.OutputBytes() != 10 || s.Count(KindHistory) != 2 || s.Count(KindRun) != 2 {
		t.Fatalf("counts: output %d (%d bytes) history %d run %d", s.Count(KindOutput), s.OutputBytes(), s.Count(KindHistory), s.Count(KindRun))
	}
	if !s.Finished() {
		t.Fatal("not finished after exit")
	}
}

func TestStatusFromExit(t *testing.T) {
	cases := []struct {
		exit *runlogv1.Exit
		want runlogv1.RunStatus
	}{
		{&runlogv1.Exit{}, runlogv1.RunStatus_RUN_STATUS_FINISHED},
		{&runlogv1.Exit{Code: 2}, runlogv1.RunStatus_RUN_STATUS_FAILED},
		{&runlogv1.Exit{Reason: runlogv1.ExitReason_EXIT_REASON_FINISHED}, runlogv1.RunStatus_RUN_STATUS_FINISHED},
		{&runlogv1.Exit{Code: 1, Reason: runlogv1.ExitReason_EXIT_REASON_FAILED}, runlogv1.RunStatus_RUN_STATUS_FAILED},
		{&runlogv1.Exit{Reason: runlogv1.ExitReason_EXIT_REASON_KILLED}, runlogv1.RunStatus_RUN_STATUS_KILLED},
		{&runlogv1.Exit{Reason: runlogv1.ExitReason_EXIT_REASON_PREEMPTED}, runlogv1.RunStatus_RUN_STATUS_PREEMPTED},
		{&runlogv1.Exit{Reason: runlogv1.ExitReason_EXIT_REASON_CRASHED}, runlogv1.RunStatus_RUN_STATUS_CRASHED},
	}
	for _, c := range cases {
		s := NewState("r")
		s.Apply(&runlogv1.Record{Seq: 1, Payload: &runlogv1.Record_Exit{Exit: c.exit}})
		if got := s.Status(); got != c.want {
			t.Errorf("exit %v: status %v, want %v", c.exit, got, c.want)
		}
	}
}

// liveCount is the definition of a live row, applied to every row: live iff
// no later rewind has a step <= the row's step.
func liveCount(recs []*runlogv1.Record) uint64 {
	var n uint64
	for i, r := range recs {
		h := r.GetHistory()
		if h == nil {
			continue
		}
		live := true
		for _, later := range recs[i+1:] {
			if rw := later.GetRewind(); rw != nil && rw.Step <= h.Step {
				live = false
				break
			}
		}
		if live {
			n++
		}
	}
	return n
}

// stepLog makes a history with rewinds. irregular makes step jumps random
// (one segment per row); otherwise steps mostly advance by a fixed stride.
func stepLog(rng *rand.Rand, n int, irregular bool) []*runlogv1.Record {
	var recs []*runlogv1.Record
	step := int64(rng.IntN(5)) - 2
	stride := int64(1 + rng.IntN(3))
	for range n {
		switch x := rng.IntN(100); {
		case x < 3 && step > 0:
			// Rewind somewhere into the past, sometimes before everything.
			step = step - int64(rng.IntN(int(min(step, 50))+1)) - int64(rng.IntN(2))*step
			recs = append(recs, rewindRec(step))
			continue
		case x < 5:
			// Step goes down without a rewind: the service refuses that, but
			// the fold must still count by the rule.
			step -= int64(rng.IntN(3))
		case x < 8:
			// Several rows at one step.
		case irregular:
			step += int64(1 + rng.IntN(1000))
		default:
			step += stride
		}
		recs = append(recs, histRec(step))
	}
	return stamp(recs)
}

func TestHistoryRowsMatchDefinition(t *testing.T) {
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 7))
		recs := stepLog(rng, 400, seed%4 == 3)
		s := NewState("r")
		for i, r := range recs {
			s.Apply(r)
			if want := liveCount(recs[:i+1]); s.HistoryRows() != want {
				t.Fatalf("seed %d after seq %d (%v): %d rows, want %d", seed, r.Seq, r.GetPayload(), s.HistoryRows(), want)
			}
		}
		if !s.HistoryRowsExact() {
			t.Fatalf("seed %d: count marked inexact with %d segments", seed, len(s.history.segs))
		}
	}
}

func TestHistoryRowsBoundedAndApproximate(t *testing.T) {
	s := NewState("r")
	// Irregular steps: one segment per row, far past the cap.
	var recs []*runlogv1.Record
	step := int64(0)
	for i := range 10 * maxSegments {
		step += int64(1 + i%7*3)
		recs = append(recs, histRec(step))
	}
	for _, r := range stamp(recs) {
		s.Apply(r)
	}
	if len(s.history.segs) > maxSegments {
		t.Fatalf("%d segments, cap %d", len(s.history.segs), maxSegments)
	}
	if s.HistoryRows() != uint64(len(recs)) || !s.HistoryRowsExact() {
		t.Fatalf("rows %d exact %v, want %d exact", s.HistoryRows(), s.HistoryRowsExact(), len(recs))
	}
	// A rewind within the recent segments stays exact.
	last := recs[len(recs)-1].GetHistory().Step
	s.Apply(rewindRec(last - 20))
	if want := liveCount(append(recs, rewindRec(last-20))); s.HistoryRows() != want || !s.HistoryRowsExact() {
		t.Fatalf("recent rewind: rows %d exact %v, want %d exact", s.HistoryRows(), s.HistoryRowsExact(), want)
	}
	// A rewind into the merged stretch is an estimate, and says so.
	mid := recs[len(recs)/2].GetHistory().Step
	all := append(recs, rewindRec(last-20), rewindRec(mid))
	s.Apply(rewindRec(mid))
	want := liveCount(all)
	if s.HistoryRowsExact() {
		t.Fatal("rewind into merged segments still claims an exact count")
	}
	if got := s.HistoryRows(); got+want/10 < want || got > want+want/10 {
		t.Fatalf("estimate %d is more than 10%% off %d", got, want)
	}
	// The exact count from the log (CountHistory) corrects it, and later
	// rows and recent rewinds count from there.
	s.SetHistoryRows(want)
	if s.HistoryRows() != want || !s.HistoryRowsExact() {
		t.Fatalf("after SetHistoryRows(%d): rows %d exact %v", want, s.HistoryRows(), s.HistoryRowsExact())
	}
	step = mid - 1
	for range 50 {
		step++
		all = append(all, histRec(step))
	}
	all = append(all, rewindRec(step-9))
	for _, r := range all[len(all)-51:] {
		s.Apply(r)
	}
	if want := liveCount(all); s.HistoryRows() != want || !s.HistoryRowsExact() {
		t.Fatalf("after more rows and a recent rewind: rows %d exact %v, want %d exact", s.HistoryRows(), s.HistoryRowsExact(), want)
	}
	data, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := new(State).UnmarshalBinary(data); err != nil {
		t.Fatalf("snapshot after a correction: %v", err)
	}
}

func TestLastStep(t *testing.T) {
	s := NewState("r")
	if s.LastStep() != -1 {
		t.Fatalf("empty LastStep %d", s.LastStep())
	}
	for _, r := range stamp([]*runlogv1.Record{histRec(0), histRec(5), rewindRec(3)}) {
		s.Apply(r)
	}
	if s.LastStep() != 3 || s.HistoryRows() != 1 {
		t.Fatalf("after rewind: last step %d rows %d, want 3 1", s.LastStep(), s.HistoryRows())
	}
}

func TestSnapshotResumesFold(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	recs := stepLog(rng, 3000, true)
	// Sprinkle the other kinds in.
	for i, r := range recs {
		switch i % 97 {
		case 5:
			r.Payload = &runlogv1.Record_Config{Config: &runlogv1.ConfigUpdate{Set: []*runlogv1.Item{item("k", i64(int64(i)))}}}
		case 6:
			r.Payload = &runlogv1.Record_Summary{Summary: &runlogv1.SummaryUpdate{Set: []*runlogv1.Item{item("s", str("x"))}}}
		case 7:
			r.Payload = &runlogv1.Record_Output{Output: &runlogv1.ConsoleOutput{Text: "line\n"}}
		case 8:
			r.Payload = &runlogv1.Record_Run{Run: &runlogv1.RunInfo{Name: "n"}}
		}
	}
	recs = append(recs, &runlogv1.Record{Seq: uint64(len(recs) + 1), Payload: &runlogv1.Record_Exit{Exit: &runlogv1.Exit{}}})

	full := NewState("run")
	for _, r := range recs {
		full.Apply(r)
	}
	for _, k := range []int{0, 1, 100, 1500, len(recs)} {
		part := NewState("run")
		for _, r := range recs[:k] {
			part.Apply(r)
		}
		data, err := part.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var resumed State
		if err := resumed.UnmarshalBinary(data); err != nil {
			t.Fatalf("unmarshal after %d: %v", k, err)
		}
		for _, r := range recs[k:] {
			resumed.Apply(r)
		}
		if !proto.Equal(resumed.Proto(), full.Proto()) {
			t.Fatalf("resumed after %d:\n got %v\nwant %v", k, resumed.Proto(), full.Proto())
		}
		if resumed.counts != full.counts || resumed.outBytes != full.outBytes || resumed.HistoryRowsExact() != full.HistoryRowsExact() {
			t.Fatalf("resumed after %d: counts %v/%d, want %v/%d", k, resumed.counts, resumed.outBytes, full.counts, full.outBytes)
		}
	}
	if err := new(State).UnmarshalBinary([]byte{0x08, 0x07}); err == nil {
		t.Fatal("unknown snapshot version accepted")
	}
	if err := new(State).UnmarshalBinary([]byte{0x12, 0x05, 0x01}); err == nil {
		t.Fatal("truncated snapshot accepted")
	}
}

func TestCloneIsIndependent(t *testing.T) {
	s := NewState("r")
	for _, r := range stamp([]*runlogv1.Record{
		{Payload: &runlogv1.Record_Config{Config: &runlogv1.ConfigUpdate{Set: []*runlogv1.Item{item("a", dbl(1))}}}},
		histRec(0), histRec(1),
	}) {
		s.Apply(r)
	}
	c := s.Clone()
	c.Apply(&runlogv1.Record{Seq: 4, Payload: &runlogv1.Record_Config{Config: &runlogv1.ConfigUpdate{Remove: []string{"a"}}}})
	c.Apply(rewindRec(0))
	if len(s.Config()) != 1 || s.HistoryRows() != 2 || s.LastSeq() != 3 {
		t.Fatalf("clone changed the original: config %v rows %d seq %d", s.Config(), s.HistoryRows(), s.LastSeq())
	}
}

// A State that keeps folding as its log grows ends where one fold of the
// whole log does.
func TestFoldContinuesFromLastSeq(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	recs := stepLog(rng, 2000, true)
	for i, r := range recs {
		if i%61 == 9 {
			r.Payload = &runlogv1.Record_Config{Config: &runlogv1.ConfigUpdate{Set: []*runlogv1.Item{item("k", i64(int64(i)))}}}
		}
	}
	whole, err := Fold(sliceSource(recs), "run", 0)
	if err != nil {
		t.Fatal(err)
	}
	s := NewState("run")
	for _, n := range []int{0, 1, 7, 700, 1999, 2000, 2000} {
		if err := s.Fold(sliceSource(recs[:n]), 0); err != nil {
			t.Fatalf("fold to %d: %v", n, err)
		}
		if s.LastSeq() != uint64(n) || s.Records() != uint64(n) {
			t.Fatalf("after folding a log of %d: last seq %d, %d records", n, s.LastSeq(), s.Records())
		}
	}
	if got, want := s.Proto(), whole.Proto(); !proto.Equal(got, want) {
		t.Fatalf("folded in steps:\n%v\nin one pass:\n%v", got, want)
	}
	if err := s.Fold(sliceSource(recs), 1500); err != nil || s.LastSeq() != 2000 {
		t.Fatalf("a fold up to a seq already applied moved the state: %d, %v", s.LastSeq(), err)
	}
}

// The fold keeps the latest system-stats sample and counts the samples,
// whichever way the records are applied, and keeps it through a snapshot.
func TestStateKeepsLatestStats(t *testing.T) {
	stats := func(cpu float64) *runlogv1.Record {
		return &runlogv1.Record{Payload: &runlogv1.Record_Stats{Stats: &runlogv1.SystemStats{
			Items: []*runlogv1.Item{item("cpu", dbl(cpu)), item("mem", i64(int64(cpu*10)))}}}}
	}
	recs := stamp([]*runlogv1.Record{
		{Payload: &runlogv1.Record_Run{Run: &runlogv1.RunInfo{Project: "p"}}},
		stats(1), histRec(0), stats(2), histRec(1), stats(3), histRec(2),
	})
	check := func(name string, s *State) {
		t.Helper()
		items, seq, at := s.LastStats()
		if s.StatsSamples() != 3 || seq != 6 || at != recs[5].GetTimeUnixNano() {
			t.Fatalf("%s: samples %d seq %d time %d", name, s.StatsSamples(), seq, at)
		}
		want := []*runlogv1.Item{item("cpu", dbl(3)), item("mem", i64(30))}
		if len(items) != 2 || !proto.Equal(items[0], want[0]) || !proto.Equal(items[1], want[1]) {
			t.Fatalf("%s: last stats %v", name, items)
		}
	}
	applied, encoded, events := NewState("r"), NewState("r"), NewState("r")
	for _, r := range recs {
		applied.Apply(r)
		b, err := proto.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := encoded.ApplyEncoded(b); err != nil {
			t.Fatal(err)
		}
		e, err := DecodeEvent(b)
		if err != nil {
			t.Fatal(err)
		}
		clear(b) // the event shares nothing with the bytes
		events.ApplyEvent(&e)
	}
	check("Apply", applied)
	check("ApplyEncoded", encoded)
	check("ApplyEvent", events)
	check("Clone", encoded.Clone())
	snap, err := encoded.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back State
	if err := back.UnmarshalBinary(snap); err != nil {
		t.Fatal(err)
	}
	check("snapshot", &back)

	var text bytes.Buffer
	if err := WriteStateText(&text, encoded); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "stats      3 samples, last seq 6") || !strings.Contains(text.String(), "cpu") {
		t.Fatalf("text lacks the stats:\n%s", text.String())
	}
	var js struct {
		Stats struct {
			Samples uint64 `json:"samples"`
			LastSeq uint64 `json:"last_seq"`
			Last    []struct {
				Key string `json:"key"`
			} `json:"last"`
		} `json:"stats"`
	}
	if err := json.Unmarshal(AppendStateJSON(nil, encoded), &js); err != nil {
		t.Fatal(err)
	}
	if js.Stats.Samples != 3 || js.Stats.LastSeq != 6 || len(js.Stats.Last) != 2 || js.Stats.Last[0].Key != "cpu" {
		t.Fatalf("json stats %+v", js.Stats)
	}
}

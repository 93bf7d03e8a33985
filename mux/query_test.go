package mux_test

import (
	"strings"
	"testing"
	"time"

	"github.com/runlog/runlog/mux"
	"github.com/runlog/runlog/mux/muxtest"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/root"
	"github.com/runlog/runlog/wal"
)

func double(v float64) *runlogv1.Value {
	return &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: v}}
}

func TestQueryListVerify(t *testing.T) {
	checkLeaks(t)
	// A short lock timeout: the test holds a run's file at the end.
	srv := muxtest.Start(t, mux.Options{WAL: wal.Options{LockTimeout: 50 * time.Millisecond}})
	c := srv.Client
	ir := initRun(t, c, &runlogv1.InitRequest{RunId: "q", Info: &runlogv1.RunInfo{Project: "proj", Name: "first"}})
	var recs [][]byte
	seq := uint64(0)
	add := func(r *runlogv1.Record) {
		seq++
		r.ClientSeq = seq
		recs = append(recs, muxtest.Encode(t, r))
	}
	add(&runlogv1.Record{Payload: &runlogv1.Record_Config{Config: &runlogv1.ConfigUpdate{
		Set: []*runlogv1.Item{{Key: "lr", Value: double(0.1)}, {Key: "bs", Value: double(32)}}}}})
	for step := range 10 {
		add(&runlogv1.Record{Payload: &runlogv1.Record_History{History: &runlogv1.HistoryRow{
			Step: int64(step), Items: []*runlogv1.Item{{Key: "loss", Value: double(float64(10 - step))}, {Key: "acc", Value: double(float64(step))}}}}})
	}
	// Rewind to step 6: rows 6..9 are dropped, 6 and 7 are logged again.
	add(&runlogv1.Record{Payload: &runlogv1.Record_Rewind{Rewind: &runlogv1.Rewind{Step: 6}}})
	for step := 6; step < 8; step++ {
		add(&runlogv1.Record{Payload: &runlogv1.Record_History{History: &runlogv1.HistoryRow{
			Step: int64(step), Items: []*runlogv1.Item{{Key: "loss", Value: double(100)}}}}})
	}
	add(&runlogv1.Record{Payload: &runlogv1.Record_Config{Config: &runlogv1.ConfigUpdate{Remove: []string{"bs"}}}})
	add(&runlogv1.Record{Payload: &runlogv1.Record_Summary{Summary: &runlogv1.SummaryUpdate{
		Set: []*runlogv1.Item{{Key: "best", Value: double(1)}}}}})
	add(&runlogv1.Record{Payload: &runlogv1.Record_Run{Run: &runlogv1.RunInfo{Name: "renamed"}}})
	st := openStream(t, c)
	if resp := send(t, st, &runlogv1.PublishRequest{RunId: "q", ClientId: ir.ClientId, Batch: 1, Records: recs}); resp.Error != nil || len(resp.Rejections) != 0 {
		t.Fatalf("publish: %v", resp)
	}

	check := func(q *runlogv1.QueryResponse, lastSeq uint64) {
		t.Helper()
		s := q.State
		if s.GetInfo().GetProject() != "proj" || s.GetInfo().GetName() != "renamed" {
			t.Fatalf("info %v", s.GetInfo())
		}
		if len(s.Config) != 1 || s.Config[0].Key != "lr" || len(s.Summary) != 1 || s.Summary[0].Key != "best" {
			t.Fatalf("config %v summary %v", s.Config, s.Summary)
		}
		if s.HistoryRows != 8 || s.LastStep != 7 || s.LastSeq != lastSeq {
			t.Fatalf("history rows %d last step %d last seq %d", s.HistoryRows, s.LastStep, s.LastSeq)
		}
		var steps []int64
		for _, h := range q.History {
			steps = append(steps, h.Step)
			for _, it := range h.Items {
				if it.Key != "loss" {
					t.Fatalf("sample at step %d has key %q, want only loss", h.Step, it.Key)
				}
			}
			if h.Step >= 6 && h.Items[0].GetValue().GetDoubleValue() != 100 {
				t.Fatalf("step %d sampled from before the rewind: %v", h.Step, h.Items)
			}
		}
		if len(steps) != 4 || steps[len(steps)-1] != 7 {
			t.Fatalf("sampled steps %v, want 4 samples ending at step 7", steps)
		}
	}
	q, err := c.Query(ctxT(t), &runlogv1.QueryRequest{RunId: "q", HistoryKeys: []string{"loss"}, MaxSamples: 4})
	if err != nil {
		t.Fatal(err)
	}
	if q.State.Status != runlogv1.RunStatus_RUN_STATUS_RUNNING {
		t.Fatalf("status %v, want running", q.State.Status)
	}
	check(q, 1+seq)
	// A second query folds only what is new: the answer is the same.
	q, err = c.Query(ctxT(t), &runlogv1.QueryRequest{RunId: "q", HistoryKeys: []string{"loss"}, MaxSamples: 4})
	if err != nil {
		t.Fatal(err)
	}
	check(q, 1+seq)

	initRun(t, c, &runlogv1.InitRequest{RunId: "other"})
	list, err := c.ListRuns(ctxT(t), &runlogv1.ListRunsRequest{})
	if err != nil || len(list.Runs) != 2 {
		t.Fatalf("ListRuns = %v, %v", list, err)
	}
	r0 := list.Runs[1]
	if r0.RunId != "q" || !r0.Open || r0.Project != "proj" || r0.Name != "renamed" || r0.LastSeq != 1+seq ||
		r0.LastStep != 7 || r0.SizeBytes == 0 || r0.Status != runlogv1.RunStatus_RUN_STATUS_RUNNING {
		t.Fatalf("summary %v", r0)
	}

	if _, err := c.Finish(ctxT(t), &runlogv1.FinishRequest{RunId: "q", ClientId: ir.ClientId,
		Exit: &runlogv1.Exit{Reason: runlogv1.ExitReason_EXIT_REASON_KILLED}}); err != nil {
		t.Fatal(err)
	}
	// Closed now: the same answers from a read-only open.
	awaitClosed(t, c, "q")
	q, err = c.Query(ctxT(t), &runlogv1.QueryRequest{RunId: "q", HistoryKeys: []string{"loss"}, MaxSamples: 4})
	if err != nil || q.State.Status != runlogv1.RunStatus_RUN_STATUS_KILLED {
		t.Fatalf("query of the closed run: %v, %v", q, err)
	}
	check(q, 2+seq)
	list, err = c.ListRuns(ctxT(t), &runlogv1.ListRunsRequest{})
	if err != nil || list.Runs[1].Open || list.Runs[1].Status != runlogv1.RunStatus_RUN_STATUS_KILLED || list.Runs[1].Project != "proj" ||
		list.Runs[1].Name != "renamed" {
		t.Fatalf("ListRuns after finish = %v, %v", list, err)
	}
	v, err := c.Verify(ctxT(t), &runlogv1.VerifyRequest{RunId: "q"})
	if err != nil || len(v.Problems) != 0 || v.Records != 2+seq || v.LastGoodSeq != 2+seq || v.FirstBadSeq != 0 {
		t.Fatalf("Verify = %v, %v", v, err)
	}
	if _, err := c.Query(ctxT(t), &runlogv1.QueryRequest{RunId: "nope"}); err == nil {
		t.Fatal("Query of a missing run succeeded")
	}

	// A closed run that another process holds is listed with the reason.
	l, err := wal.Open(root.Dir(srv.Root()).Log("q"), wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	list, err = c.ListRuns(ctxT(t), &runlogv1.ListRunsRequest{})
	if err != nil || len(list.Runs) != 2 || list.Runs[1].RunId != "q" || !strings.Contains(list.Runs[1].Error, "held by another process") {
		t.Fatalf("ListRuns with q locked = %v, %v", list, err)
	}
	if list.Runs[0].Error != "" || !list.Runs[0].Open {
		t.Fatalf("the other run suffers from q's lock: %v", list.Runs[0])
	}
}

// awaitClosed waits until the service has closed a finished run's log, so
// the file can be opened by others.
func awaitClosed(t *testing.T, c runlogv1.RunlogClient, id string) {
	t.Helper()
	for {
		list, err := c.ListRuns(ctxT(t), &runlogv1.ListRunsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		open := false
		for _, r := range list.Runs {
			open = open || (r.RunId == id && r.Open)
		}
		if !open {
			return
		}
		// The close has no event a client can wait for: poll.
		time.Sleep(5 * time.Millisecond)
	}
}

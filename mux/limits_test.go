package mux_test

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/runlog/runlog/mux"
	"github.com/runlog/runlog/mux/muxtest"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// TestPayloadLimitsApplyToEveryRPC: what becomes a record (Init's run info,
// Finish's exit) is held to the record limit, every other request to about
// that; a refused call changes nothing.
func TestPayloadLimitsApplyToEveryRPC(t *testing.T) {
	checkLeaks(t)
	const limit = 1 << 20
	srv := muxtest.Start(t, mux.Options{MaxRecordBytes: limit})
	c := srv.Client

	for _, tc := range []struct {
		name  string
		notes int
		msg   string
	}{
		{"30 MiB of notes", 30 << 20, "exceeds the limit"},
		{"notes just over the record limit", limit, "run info of"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Init(ctxT(t), &runlogv1.InitRequest{RunId: "big", Info: &runlogv1.RunInfo{Notes: strings.Repeat("n", tc.notes)}})
			wantCode(t, err, codes.InvalidArgument, tc.msg)
			wantCode(t, err, codes.InvalidArgument, fmt.Sprint(limit))
			// Nothing of it was created.
			_, err = c.Init(ctxT(t), &runlogv1.InitRequest{RunId: "big", Resume: runlogv1.ResumeMode_RESUME_MODE_MUST})
			wantCode(t, err, codes.NotFound, "not found")
		})
	}
	ir, err := c.Init(ctxT(t), &runlogv1.InitRequest{RunId: "big", ClientId: "c1", Info: &runlogv1.RunInfo{Notes: strings.Repeat("n", limit/2)}})
	if err != nil {
		t.Fatalf("Init with notes of half the record limit: %v", err)
	}

	_, err = c.Init(ctxT(t), &runlogv1.InitRequest{RunId: "big", ClientId: "c2", Resume: runlogv1.ResumeMode_RESUME_MODE_MUST,
		Info: &runlogv1.RunInfo{Tags: []string{strings.Repeat("t", limit)}}})
	wantCode(t, err, codes.InvalidArgument, "run info of")

	_, err = c.Finish(ctxT(t), &runlogv1.FinishRequest{RunId: "big", ClientId: ir.ClientId,
		Exit: &runlogv1.Exit{Code: 1, Message: strings.Repeat("t", limit)}})
	wantCode(t, err, codes.InvalidArgument, "exit of")

	_, err = c.Query(ctxT(t), &runlogv1.QueryRequest{RunId: "big", HistoryKeys: make([]string, 20_000)})
	wantCode(t, err, codes.InvalidArgument, "history_keys holds 20000 keys")

	_, err = c.Teardown(ctxT(t), &runlogv1.TeardownRequest{ClientId: "c\x01" + strings.Repeat("x", 300)})
	wantCode(t, err, codes.InvalidArgument, "client id")

	// The refused Finish left the run open and the client attached.
	st := openStream(t, c)
	resp := send(t, st, &runlogv1.PublishRequest{RunId: "big", ClientId: ir.ClientId, Batch: 1,
		Records: muxtest.HistoryBatch(t, 1, 0, 3, 1)})
	if resp.Error != nil || resp.AckedClientSeq != 3 {
		t.Fatalf("publish after the refused Finish: %v", resp)
	}
	fin, err := c.Finish(ctxT(t), &runlogv1.FinishRequest{RunId: "big", ClientId: ir.ClientId, Exit: &runlogv1.Exit{Code: 1, Message: "short"}})
	if err != nil || !fin.Closed {
		t.Fatalf("Finish = %v, %v", fin, err)
	}
}

// TestOversizePublishIsAnsweredInBand: a PublishRequest over gRPC's former
// message limit (64 MiB) gets an answer, and the stream carries on.
func TestOversizePublishIsAnsweredInBand(t *testing.T) {
	checkLeaks(t)
	srv := muxtest.Start(t, mux.Options{})
	c := srv.Client
	ir := initRun(t, c, &runlogv1.InitRequest{RunId: "huge"})
	st := openStream(t, c)
	record := func(cs uint64, n int) []byte {
		return muxtest.Encode(t, &runlogv1.Record{ClientSeq: cs, Payload: &runlogv1.Record_Output{
			Output: &runlogv1.ConsoleOutput{Text: strings.Repeat("o", n)}}})
	}

	// 18 records within the record limit, 70 MiB together.
	var many [][]byte
	for i := range 18 {
		many = append(many, record(uint64(i+1), mux.DefaultMaxRecordBytes-200<<10))
	}
	resp := send(t, st, &runlogv1.PublishRequest{RunId: "huge", ClientId: ir.ClientId, Batch: 1, Records: many})
	wantProtoError(t, resp.Error, codes.InvalidArgument, "send fewer records per batch")
	if resp.AckedClientSeq != 0 {
		t.Fatalf("acked %d of a refused batch", resp.AckedClientSeq)
	}

	// One record of 70 MiB: refused on its own.
	resp = send(t, st, &runlogv1.PublishRequest{RunId: "huge", ClientId: ir.ClientId, Batch: 2,
		Records: [][]byte{record(1, 70<<20), record(2, 10)}})
	if resp.Error != nil || len(resp.Rejections) != 1 || resp.Rejections[0].ClientSeq != 1 || resp.AckedClientSeq != 2 {
		t.Fatalf("batch with a 70 MiB record: %v", resp.Error)
	}
	wantProtoError(t, resp.Rejections[0].Error, codes.InvalidArgument, "exceeds the limit")

	// The stream still works.
	resp = send(t, st, &runlogv1.PublishRequest{RunId: "huge", ClientId: ir.ClientId, Batch: 3, Records: [][]byte{record(3, 10)}})
	if resp.Error != nil || resp.AckedClientSeq != 3 {
		t.Fatalf("after the oversize batches: %v", resp)
	}
	if recs := readAll(t, c, "huge"); len(recs) != 3 {
		t.Fatalf("%d records, want the run info and 2", len(recs))
	}
}

// TestUnknownEnumValuesAreRefused: every enum field, in requests and in
// published records, takes only the values its enum defines.
func TestUnknownEnumValuesAreRefused(t *testing.T) {
	checkLeaks(t)
	srv := muxtest.Start(t, mux.Options{})
	c := srv.Client

	_, err := c.Init(ctxT(t), &runlogv1.InitRequest{RunId: "e", Resume: 99})
	wantCode(t, err, codes.InvalidArgument, "resume 99 is not a runlog.v1.ResumeMode value")
	_, err = c.Init(ctxT(t), &runlogv1.InitRequest{RunId: "e", Mode: -3})
	wantCode(t, err, codes.InvalidArgument, "mode -3 is not a runlog.v1.SyncMode value")

	ir := initRun(t, c, &runlogv1.InitRequest{RunId: "e"})
	_, err = c.Finish(ctxT(t), &runlogv1.FinishRequest{RunId: "e", ClientId: ir.ClientId, Exit: &runlogv1.Exit{Reason: 42}})
	wantCode(t, err, codes.InvalidArgument, "exit.reason 42 is not a runlog.v1.ExitReason value")

	st := openStream(t, c)
	recs := []*runlogv1.Record{
		{Payload: &runlogv1.Record_Output{Output: &runlogv1.ConsoleOutput{Stream: 7, Text: "x"}}},
		{Payload: &runlogv1.Record_Alert{Alert: &runlogv1.Alert{Title: "a", Level: 99}}},
		{Payload: &runlogv1.Record_Metric{Metric: &runlogv1.MetricDefinition{Name: "m", Summary: 6}}},
		{Payload: &runlogv1.Record_Metric{Metric: &runlogv1.MetricDefinition{Name: "m", Goal: -1}}},
		{Payload: &runlogv1.Record_Alert{Alert: &runlogv1.Alert{Title: "fine", Level: runlogv1.Alert_LEVEL_WARN}}},
	}
	want := []string{
		"output.stream 7 is not a runlog.v1.ConsoleOutput.Stream value",
		"alert.level 99 is not a runlog.v1.Alert.Level value",
		"metric.summary 6 is not a runlog.v1.MetricDefinition.Summary value",
		"metric.goal -1 is not a runlog.v1.MetricDefinition.Goal value",
	}
	req := &runlogv1.PublishRequest{RunId: "e", ClientId: ir.ClientId, Batch: 1}
	for i, r := range recs {
		r.ClientSeq = uint64(i + 1)
		req.Records = append(req.Records, muxtest.Encode(t, r))
	}
	resp := send(t, st, req)
	if resp.Error != nil || len(resp.Rejections) != len(want) || resp.AckedClientSeq != 5 {
		t.Fatalf("answer %v, want %d rejections", resp, len(want))
	}
	for i, rj := range resp.Rejections {
		wantProtoError(t, rj.Error, codes.InvalidArgument, want[i])
	}
	fin, err := c.Finish(ctxT(t), &runlogv1.FinishRequest{RunId: "e", ClientId: ir.ClientId, Exit: &runlogv1.Exit{Reason: runlogv1.ExitReason_EXIT_REASON_KILLED}})
	if err != nil || !fin.Closed {
		t.Fatalf("Finish = %v, %v", fin, err)
	}
}

// lowestFreeFD returns the descriptor the next open would get.
func lowestFreeFD(t *testing.T) uint64 {
	t.Helper()
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return uint64(f.Fd())
}

// TestOutOfFileDescriptors: with no descriptor left, Init answers
// RESOURCE_EXHAUSTED, and ListRuns lists every run, describing the one it
// cannot open instead of failing as a whole.
func TestOutOfFileDescriptors(t *testing.T) {
	checkLeaks(t)
	srv := muxtest.Start(t, mux.Options{})
	c := srv.Client
	done := initRun(t, c, &runlogv1.InitRequest{RunId: "done"})
	if _, err := c.Finish(ctxT(t), &runlogv1.FinishRequest{RunId: "done", ClientId: done.ClientId}); err != nil {
		t.Fatal(err)
	}
	awaitClosed(t, c, "done")
	initRun(t, c, &runlogv1.InitRequest{RunId: "open", Info: &runlogv1.RunInfo{Project: "p"}})

	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	low := old
	low.Cur = lowestFreeFD(t)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
				t.Errorf("restore RLIMIT_NOFILE: %v", err)
			}
		}
	}
	t.Cleanup(restore) // runs before the service stops

	_, err := c.Init(ctxT(t), &runlogv1.InitRequest{RunId: "new"})
	wantCode(t, err, codes.ResourceExhausted, "out of file descriptors")
	_, err = c.Query(ctxT(t), &runlogv1.QueryRequest{RunId: "done"})
	wantCode(t, err, codes.ResourceExhausted, "ulimit -n")
	list, err := c.ListRuns(ctxT(t), &runlogv1.ListRunsRequest{})
	restore()
	if err != nil {
		t.Fatalf("ListRuns without file descriptors: %v", err)
	}
	if len(list.Runs) != 2 {
		t.Fatalf("ListRuns = %v, want runs done and open", list.Runs)
	}
	if r := list.Runs[0]; r.RunId != "done" || !strings.Contains(r.Error, "too many open files") {
		t.Errorf("closed run %v, want its error", r)
	}
	if r := list.Runs[1]; r.RunId != "open" || r.Error != "" || r.Project != "p" || !r.Open {
		t.Errorf("open run %v, want it described", r)
	}

	// With descriptors back, everything works again.
	initRun(t, c, &runlogv1.InitRequest{RunId: "new"})
	list, err = c.ListRuns(ctxT(t), &runlogv1.ListRunsRequest{})
	if err != nil || len(list.Runs) != 3 || list.Runs[0].Error != "" {
		t.Fatalf("ListRuns = %v, %v", list, err)
	}
}

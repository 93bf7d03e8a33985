package mux_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/runlog/runlog/mux"
	"github.com/runlog/runlog/mux/muxtest"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// TestFinishByStrangerIsRefused: only a client attached to a run decides
// how it ended. A client id that never called Init on the run cannot
// finish it, neither while its clients log nor once they are gone (the
// crash grace decides then), and its exit does not count.
func TestFinishByStrangerIsRefused(t *testing.T) {
	checkLeaks(t)
	srv := muxtest.Start(t, mux.Options{CrashGrace: time.Hour})
	c := srv.Client
	for _, cl := range []string{"rank0", "rank1"} {
		initRun(t, c, &runlogv1.InitRequest{RunId: "shared", ClientId: cl, Resume: runlogv1.ResumeMode_RESUME_MODE_ALLOW})
	}
	initRun(t, c, &runlogv1.InitRequest{RunId: "other", ClientId: "stranger"})
	st := openStream(t, c)

	crashed := &runlogv1.Exit{Reason: runlogv1.ExitReason_EXIT_REASON_CRASHED, Code: 9}
	_, err := c.Finish(ctxT(t), &runlogv1.FinishRequest{RunId: "shared", ClientId: "stranger", Exit: crashed})
	wantCode(t, err, codes.FailedPrecondition, `client "stranger" is not attached to run shared`)
	wantCode(t, err, codes.FailedPrecondition, "call Init (resume=must) with this client id first")

	// Both ranks still log.
	for i, cl := range []string{"rank0", "rank1"} {
		resp := send(t, st, &runlogv1.PublishRequest{RunId: "shared", ClientId: cl, Batch: uint64(i),
			Records: [][]byte{muxtest.Encode(t, muxtest.History(1, int64(i), 1))}})
		if resp.Error != nil || len(resp.Rejections) != 0 {
			t.Fatalf("%s after the stranger's Finish: %v", cl, resp)
		}
	}
	// rank1 finishes; its repeated Finish gets the same answer; the
	// stranger still cannot close the run although only rank0 is left.
	for range 2 {
		fin, err := c.Finish(ctxT(t), &runlogv1.FinishRequest{RunId: "shared", ClientId: "rank1"})
		if err != nil || fin.Closed {
			t.Fatalf("rank1 Finish = %v, %v; want closed=false", fin, err)
		}
	}
	_, err = c.Finish(ctxT(t), &runlogv1.FinishRequest{RunId: "shared", ClientId: "stranger", Exit: crashed})
	wantCode(t, err, codes.FailedPrecondition, "not attached")

	// With no client left (Teardown), the run waits out the grace; a
	// stranger still cannot end it.
	if _, err := c.Teardown(ctxT(t), &runlogv1.TeardownRequest{ClientId: "rank0"}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Finish(ctxT(t), &runlogv1.FinishRequest{RunId: "shared", ClientId: "stranger", Exit: crashed})
	wantCode(t, err, codes.FailedPrecondition, "not attached")

	// rank0 comes back and finishes: the run closes with the ranks' exit.
	initRun(t, c, &runlogv1.InitRequest{RunId: "shared", ClientId: "rank0", Resume: runlogv1.ResumeMode_RESUME_MODE_MUST})
	fin, err := c.Finish(ctxT(t), &runlogv1.FinishRequest{RunId: "shared", ClientId: "rank0"})
	if err != nil || !fin.Closed {
		t.Fatalf("rank0 Finish = %v, %v; want closed", fin, err)
	}
	recs := readAll(t, c, "shared")
	exit := recs[len(recs)-1]
	if exit.GetExit().GetReason() != runlogv1.ExitReason_EXIT_REASON_FINISHED || exit.GetExit().GetCode() != 0 || exit.ClientId != "rank0" {
		t.Fatalf("exit record %v, want rank0's finished exit", exit)
	}
	// Once the run is finished, any Finish gets the idempotent answer.
	fin, err = c.Finish(ctxT(t), &runlogv1.FinishRequest{RunId: "shared", ClientId: "rank1"})
	if err != nil || !fin.Closed || fin.Seq != exit.Seq {
		t.Fatalf("Finish after close = %v, %v", fin, err)
	}
}

package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/runlog/runlog/mux"
	"github.com/runlog/runlog/mux/muxtest"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/store/storetest"
)

// A bad checksum in the middle of a log passes the page walk at open; the
// service must still refuse to append to that run, and say why.
func TestServiceRefusesAppendsToRunDamagedInTheMiddle(t *testing.T) {
	dir := t.TempDir()
	path := makeRun(t, dir, "hole", storetest.Run{Rows: 200, Keys: 2}) // unfinished
	makeRun(t, dir, "sound", storetest.Run{Rows: 20, Keys: 2})
	damageRecord(t, path, 57)

	srv := muxtest.StartAt(t, dir, mux.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := srv.Client.Init(ctx, &runlogv1.InitRequest{RunId: "hole", Resume: runlogv1.ResumeMode_RESUME_MODE_ALLOW})
	if status.Code(err) != codes.DataLoss || !strings.Contains(err.Error(), "damaged at seq 57") || !strings.Contains(err.Error(), "takes no more records") {
		t.Fatalf("Init of a run damaged at seq 57: %v", err)
	}
	// The other run takes records as before.
	if _, err := srv.Client.Init(ctx, &runlogv1.InitRequest{RunId: "sound", Resume: runlogv1.ResumeMode_RESUME_MODE_ALLOW}); err != nil {
		t.Fatalf("Init of a sound run: %v", err)
	}
	resp, err := srv.Client.ListRuns(ctx, &runlogv1.ListRunsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range resp.GetRuns() {
		if s.GetRunId() == "hole" && s.GetFirstBadSeq() != 57 && !strings.Contains(s.GetError(), "seq 57") {
			t.Fatalf("the damaged run is listed as %v", s)
		}
	}
}

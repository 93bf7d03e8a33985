package replay

import (
	"testing"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wal"
	"github.com/runlog/runlog/wal/waltest"
)

func TestOverviewFoldsEveryRunInfoAndTheExit(t *testing.T) {
	l := waltest.Open(t)
	info := func(name, project string) *runlogv1.Record {
		return &runlogv1.Record{Payload: &runlogv1.Record_Run{Run: &runlogv1.RunInfo{Name: name, Project: project}}}
	}
	if err := l.Append([]*runlogv1.Record{info("first", "p")}); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(waltest.History(0, 50, 3)); err != nil {
		t.Fatal(err)
	}
	// A resume renames the run; the project stays.
	if err := l.Append([]*runlogv1.Record{info("renamed", "")}); err != nil {
		t.Fatal(err)
	}
	st, err := Overview(l, "r", l.LastSeq())
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Proto().GetInfo(); got.GetName() != "renamed" || got.GetProject() != "p" {
		t.Fatalf("info %v, want name renamed, project p", got)
	}
	if st.Status() != runlogv1.RunStatus_RUN_STATUS_RUNNING {
		t.Fatalf("status %v, want running", st.Status())
	}
	exit := &runlogv1.Record{Payload: &runlogv1.Record_Exit{Exit: &runlogv1.Exit{Code: 1, Reason: runlogv1.ExitReason_EXIT_REASON_FAILED}}}
	if err := l.Append([]*runlogv1.Record{exit}); err != nil {
		t.Fatal(err)
	}
	st, err = Overview(l, "r", l.LastSeq())
	if err != nil {
		t.Fatal(err)
	}
	if st.Status() != runlogv1.RunStatus_RUN_STATUS_FAILED || st.Proto().GetInfo().GetName() != "renamed" {
		t.Fatalf("after exit: status %v info %v", st.Status(), st.Proto().GetInfo())
	}
	// Overview agrees with the full fold on what it promises.
	full, err := Fold(l, "r", 0)
	if err != nil {
		t.Fatal(err)
	}
	if full.Status() != st.Status() || full.Proto().GetInfo().GetName() != st.Proto().GetInfo().GetName() {
		t.Fatalf("overview %v / %v, fold %v / %v", st.Status(), st.Proto().GetInfo(), full.Status(), full.Proto().GetInfo())
	}
	var _ Source = (*wal.Log)(nil)
}

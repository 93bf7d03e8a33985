package replay

import (
	"errors"
	"fmt"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wal"
)

// Summary describes a run for a listing (runlog runs, the service's
// ListRuns): records, last step and size from the log's own end, project,
// name and status, and each upstream's cursor with its last sync error. The
// description comes from fold, the run's state as its owner keeps it folded
// (a run the service has open), or, when fold is nil, from an Overview of
// the log: a closed run may be large. A damaged log is described by its
// valid prefix, with the first record that cannot be read (first_bad_seq).
// A problem goes into the summary's error; the fields it could not fill
// stay empty.
func Summary(l *wal.Log, id string, fold func() (*runlogv1.RunState, error)) *runlogv1.RunSummary {
	sum := &runlogv1.RunSummary{RunId: id, LastSeq: l.LastSeq(), LastStep: l.LastStep()}
	sum.SizeBytes, _ = l.Size()
	var ce *wal.CorruptError
	damage := l.Damage()
	if errors.As(damage, &ce) {
		sum.FirstBadSeq = ce.Seq
	}
	if fold == nil {
		fold = func() (*runlogv1.RunState, error) {
			st, err := Overview(l, id, sum.LastSeq)
			var bad *wal.CorruptError
			if errors.As(err, &bad) && bad.Seq > 0 {
				// Describe the run by its valid prefix, when it reads.
				if st, err = Overview(l, id, bad.Seq-1); err == nil {
					sum.FirstBadSeq, sum.LastSeq = bad.Seq, bad.Seq-1
				}
			}
			if err != nil {
				return nil, err
			}
			return st.Proto(), nil
		}
	}
	st, err := fold()
	switch {
	case err != nil && errors.As(err, &ce):
		sum.Error = fmt.Sprintf("damaged: %v", err)
	case err != nil:
		sum.Error = err.Error()
	default:
		sum.Project, sum.Name, sum.Status = st.GetInfo().GetProject(), st.GetInfo().GetName(), st.GetStatus()
	}
	switch {
	case sum.Error != "":
	case sum.FirstBadSeq != 0:
		sum.Error = fmt.Sprintf("damaged at seq %d", sum.FirstBadSeq)
	case damage != nil:
		// Damage elsewhere in the file: every record reads.
		sum.Error = fmt.Sprintf("damaged: %v", damage)
	}
	if cursors, err := l.Cursors(); err == nil && len(cursors) > 0 {
		sum.Cursors = cursors
		sum.SyncErrors = l.SyncErrors(cursors)
	}
	return sum
}

// UnreadableSummary is the summary of a run whose log could not be opened:
// the reason, and no history.
func UnreadableSummary(id string, err error) *runlogv1.RunSummary {
	msg := err.Error()
	if errors.Is(err, wal.ErrLocked) {
		msg = "log is held by another process"
	}
	return &runlogv1.RunSummary{RunId: id, LastStep: -1, Error: msg}
}

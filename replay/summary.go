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
// the log: a closed run may be large. A problem goes into the summary's
// error; the fields it could not fill stay empty.
func Summary(l *wal.Log, id string, fold func() (*runlogv1.RunState, error)) *runlogv1.RunSummary {
	sum := &runlogv1.RunSummary{RunId: id, LastSeq: l.LastSeq(), LastStep: l.LastStep()}
	sum.SizeBytes, _ = l.Size()
	if d := l.Damage(); d != nil {
		// Listed with its valid prefix; readers stop before the damage.
		sum.Error = fmt.Sprintf("damaged: %v", d)
	}
	if fold == nil {
		fold = func() (*runlogv1.RunState, error) {
			st, err := Overview(l, id, sum.LastSeq)
			if err != nil {
				return nil, err
			}
			return st.Proto(), nil
		}
	}
	if st, err := fold(); err != nil {
		sum.Error = err.Error()
		var ce *wal.CorruptError
		if errors.As(err, &ce) {
			sum.Error = fmt.Sprintf("damaged: %v", err)
		}
	} else {
		sum.Project, sum.Name, sum.Status = st.GetInfo().GetProject(), st.GetInfo().GetName(), st.GetStatus()
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

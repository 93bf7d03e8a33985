package replay

import "fmt"

// Overview folds what a run listing needs: the run's RunInfo records (a
// resume or another process attaching may rename it) and its last record
// (the exit, when there is one). Every other record is skipped without
// being decoded, so a listing costs one pass over the bytes of each run
// instead of a full fold. last is the log's last sequence.
//
// The state's counters (records, history rows, config, summary) are not
// meaningful; only its info and status are.
func Overview(src Source, runID string, last uint64) (*State, error) {
	st := NewState(runID)
	if last == 0 {
		return st, nil
	}
	err := EncodedRecords(src, Filter{Kinds: []Kind{KindRun}, To: last - 1}, func(seq uint64, data []byte) error {
		if err := st.ApplyEncoded(data); err != nil {
			return fmt.Errorf("run %s: record %d: %w", runID, seq, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = EncodedRecords(src, Filter{From: last, To: last}, func(seq uint64, data []byte) error {
		if err := st.ApplyEncoded(data); err != nil {
			return fmt.Errorf("run %s: record %d: %w", runID, seq, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

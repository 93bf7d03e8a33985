package loadgen

import (
	"fmt"

	"github.com/runlog/runlog/root"
	"github.com/runlog/runlog/wal"
	"github.com/runlog/runlog/wire"
)

// Verify reads the logs of the runs ids under dir and returns what is
// wrong, one line a run: each of steps 0..n-1 must be there exactly once,
// sequences gap-free, and the log finished.
func Verify(dir root.Dir, ids []string, n int) []string {
	var problems []string
	for _, id := range ids {
		if err := verifyRun(dir.Log(id), n); err != nil {
			problems = append(problems, fmt.Sprintf("run %s: %v", id, err))
		}
	}
	return problems
}

func verifyRun(path string, n int) error {
	l, err := wal.Open(path, wal.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer l.Close()
	seen := make([]uint64, (n+63)/64)
	var expect uint64 = 1
	rows, dups := 0, 0
	err = l.Scan(1, func(seq uint64, data []byte) error {
		if seq != expect {
			return fmt.Errorf("sequence gap: expected %d, found %d", expect, seq)
		}
		expect++
		step, ok, err := historyStep(data)
		if err != nil {
			return fmt.Errorf("seq %d: %w", seq, err)
		}
		if !ok {
			return nil
		}
		if step < 0 || step >= int64(n) {
			return fmt.Errorf("seq %d: step %d out of range 0..%d", seq, step, n-1)
		}
		w, bit := step/64, uint64(1)<<(step%64)
		if seen[w]&bit != 0 {
			dups++
		}
		seen[w] |= bit
		rows++
		return nil
	})
	if err != nil {
		return err
	}
	missing := 0
	for i := 0; i < n; i++ {
		if seen[i/64]&(1<<(i%64)) == 0 {
			missing++
		}
	}
	if dups > 0 || missing > 0 {
		return fmt.Errorf("%d history rows: %d steps missing, %d duplicated", rows, missing, dups)
	}
	if !l.Finished() {
		return fmt.Errorf("no exit record after %d records", l.LastSeq())
	}
	return nil
}

// historyStep returns the step of an encoded history record, and false for
// records of other kinds. It reads only the fields it needs.
func historyStep(b []byte) (int64, bool, error) {
	h, err := wire.ParseHeader(b)
	if err != nil || h.Kind != wire.KindHistory {
		return 0, false, err
	}
	step, err := wire.Step(h.Payload)
	return step, err == nil, err
}

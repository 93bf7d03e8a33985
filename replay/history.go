package replay

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wal"
	"github.com/runlog/runlog/wire"
)

// Source is a run's log as encoded records in sequence order.
type Source interface {
	// Scan calls fn with the seq and encoded runlog.v1.Record of each record
	// from seq from (0 and 1 mean the start) to the end of the log. data is
	// valid only during the call. An error from fn stops the scan, and Scan
	// returns it.
	Scan(from uint64, fn func(seq uint64, data []byte) error) error
}

var _ Source = (*wal.Log)(nil)

// errStop ends a scan early; the readers never return it.
var errStop = errors.New("replay: stop")

// Row is one live history row.
type Row struct {
	Seq   uint64
	Step  int64
	Items []*runlogv1.Item
}

// HistoryOptions select what History reads. The zero value reads every key
// of every row of the whole log.
type HistoryOptions struct {
	// Keys restricts rows to these keys; rows that have none of them are
	// skipped. Empty means every key.
	Keys []string
	// To is the last seq to read, as if the log ended there. Zero means the
	// end of the log.
	To uint64
	// FromStep and ToStep bound the rows' steps, both inclusive: rows below
	// a positive FromStep, and rows above ToStep when HasToStep is set, are
	// skipped. Whether a row is live does not depend on them: a rewind
	// outside the range still drops the rows at or after its step.
	FromStep  int64
	ToStep    int64
	HasToStep bool
}

// inSteps reports whether a row at step is within the step range.
func (o *HistoryOptions) inSteps(step int64) bool {
	return (o.FromStep <= 0 || step >= o.FromStep) && (!o.HasToStep || step <= o.ToStep)
}

// History calls fn with each live history row that opts select, in log
// order: a row is live when no later rewind has a step at or below its step.
// Rows outside the step range are skipped before their items are decoded.
// It reads src twice:
// once for the rewinds and the end of the log, then for the rows. The rows
// passed to fn are fresh; fn may keep them. An error from fn stops the read
// and is returned.
func History(src Source, opts HistoryOptions, fn func(Row) error) error {
	var want map[string]bool
	if len(opts.Keys) > 0 {
		want = make(map[string]bool, len(opts.Keys))
		for _, k := range opts.Keys {
			want[k] = true
		}
	}
	return liveRows(src, opts.To, func(seq uint64, step int64, payload []byte) error {
		if !opts.inSteps(step) {
			return nil
		}
		// Without decoding the items a caller did not ask for, when the row
		// is as encoders write it.
		if items, ok := decodeRowWire(payload, want); ok {
			if len(items) == 0 && want != nil {
				return nil
			}
			return fn(Row{Seq: seq, Step: step, Items: items})
		}
		var h runlogv1.HistoryRow
		if err := proto.Unmarshal(payload, &h); err != nil {
			return fmt.Errorf("read history at seq %d: %w", seq, err)
		}
		items := h.Items
		if want != nil {
			items = items[:0]
			for _, it := range h.Items {
				if want[it.GetKey()] {
					items = append(items, it)
				}
			}
			if len(items) == 0 {
				return nil
			}
		}
		return fn(Row{Seq: seq, Step: step, Items: items})
	})
}

// CountHistory returns the number of live history rows up to seq to (0: the
// end of the log), exactly, reading only the steps.
func CountHistory(src Source, to uint64) (uint64, error) {
	var n uint64
	err := liveRows(src, to, func(uint64, int64, []byte) error { n++; return nil })
	return n, err
}

// SampleHistory returns up to max of the rows History reads with opts,
// spread evenly over them and always including the last one. max <= 0 means
// 1000. It reads the log as History does, streaming: memory is bounded by
// 2*max rows whatever the length of the history.
func SampleHistory(src Source, opts HistoryOptions, max int) ([]*runlogv1.HistorySample, error) {
	if max <= 0 {
		max = 1000
	}
	var (
		buf    []Row  // rows whose index is a multiple of stride
		stride uint64 = 1
		idx    uint64
		last   Row
	)
	err := History(src, opts, func(r Row) error {
		if idx%stride == 0 {
			buf = append(buf, r)
			if len(buf) >= 2*max {
				for i := range len(buf) / 2 {
					buf[i] = buf[2*i]
				}
				clear(buf[len(buf)/2:])
				buf = buf[:len(buf)/2]
				stride *= 2
			}
		}
		last = r
		idx++
		return nil
	})
	if err != nil {
		return nil, err
	}
	if idx == 0 {
		return nil, nil
	}
	pick := buf
	if len(buf) > max-1 && idx > uint64(max) {
		// Evenly spaced over the decimated rows, and the last row so that a
		// chart ends where the run does.
		pick = make([]Row, 0, max)
		for i := range max - 1 {
			pick = append(pick, buf[i*len(buf)/(max-1)])
		}
	}
	if len(pick) == 0 || pick[len(pick)-1].Seq != last.Seq {
		pick = append(pick, last)
	}
	out := make([]*runlogv1.HistorySample, len(pick))
	for i, r := range pick {
		out[i] = &runlogv1.HistorySample{Step: r.Step, Items: r.Items}
	}
	return out, nil
}

// rewindMark is a rewind that can still drop rows before it.
type rewindMark struct {
	seq  uint64
	step int64
}

// liveRows calls fn with the seq, step and encoded HistoryRow of each live
// history row up to to (0: the end of the log as found by the first pass).
func liveRows(src Source, to uint64, fn func(seq uint64, step int64, payload []byte) error) error {
	// Pass 1: the rewinds. A rewind is only needed while no later rewind has
	// a step at or below its own, so the marks keep strictly increasing
	// steps and stay small.
	var (
		marks []rewindMark
		end   uint64
	)
	err := src.Scan(1, func(seq uint64, data []byte) error {
		if to != 0 && seq > to {
			return errStop
		}
		end = seq
		k, payload, err := payloadOf(data)
		if err != nil {
			return fmt.Errorf("read record %d: %w", seq, err)
		}
		if k != KindRewind {
			return nil
		}
		step, err := wire.Step(payload)
		if err != nil {
			return fmt.Errorf("read rewind at seq %d: %w", seq, err)
		}
		for len(marks) > 0 && marks[len(marks)-1].step >= step {
			marks = marks[:len(marks)-1]
		}
		marks = append(marks, rewindMark{seq: seq, step: step})
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return fmt.Errorf("read history: %w", err)
	}
	if end == 0 {
		return nil
	}
	// Pass 2: the rows, each checked against the first rewind after it,
	// which has the lowest step of all the rewinds after it.
	next := 0
	err = src.Scan(1, func(seq uint64, data []byte) error {
		if seq > end {
			return errStop
		}
		k, payload, err := payloadOf(data)
		if err != nil {
			return fmt.Errorf("read record %d: %w", seq, err)
		}
		if k != KindHistory {
			return nil
		}
		step, err := wire.Step(payload)
		if err != nil {
			return fmt.Errorf("read history at seq %d: %w", seq, err)
		}
		for next < len(marks) && marks[next].seq < seq {
			next++
		}
		if next < len(marks) && marks[next].step <= step {
			return nil
		}
		return fn(seq, step, payload)
	})
	if err != nil && !errors.Is(err, errStop) {
		return fmt.Errorf("read history: %w", err)
	}
	return nil
}

// payloadOf returns the kind and the encoded payload message of an encoded
// Record without decoding the rest. A record with several payload fields (not
// something a proto encoder writes) counts as its last one, as in a full
// decode.
func payloadOf(b []byte) (Kind, []byte, error) {
	h, err := wire.ParseHeader(b)
	if err != nil {
		return KindNone, nil, err
	}
	return h.Kind, h.Payload, nil
}

// Fold applies the records of src up to seq to (0: the end of the log) to a
// new State for runID.
func Fold(src Source, runID string, to uint64) (*State, error) {
	s := NewState(runID)
	if err := s.Fold(src, to); err != nil {
		return nil, err
	}
	return s, nil
}

// Fold applies the records of src after s.LastSeq() up to seq to (0: the end
// of the log), so a caller that keeps a State folds only what is new. On
// error s holds the records before the one that failed.
func (s *State) Fold(src Source, to uint64) error {
	err := src.Scan(s.lastSeq+1, func(seq uint64, data []byte) error {
		if to != 0 && seq > to {
			return errStop
		}
		if err := s.ApplyEncoded(data); err != nil {
			return fmt.Errorf("decode record %d: %w", seq, err)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return fmt.Errorf("fold run %s: %w", s.runID, err)
	}
	return nil
}

package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/replay"
	"github.com/runlog/runlog/rollup"
	"github.com/runlog/runlog/wire"
)

// The history tiers of a run (package rollup) live in its run bucket:
//
//	"rollup"       the builder (key table, row count, partial blocks)
//	tiers/<level>  key: block index, 8-byte big-endian; value: the block
var (
	keyRollup   = []byte("rollup")
	bucketTiers = []byte("tiers")
)

// chartRow is a history row's numeric values, prepared by Append outside
// the writer.
type chartRow struct {
	step int64
	t    int64
	vals []rollup.Value
}

// oneRecord is a replay.Source of a single encoded record.
type oneRecord struct {
	seq  uint64
	data []byte
}

func (o oneRecord) Scan(from uint64, fn func(seq uint64, data []byte) error) error {
	if from > o.seq {
		return nil
	}
	return fn(o.seq, o.data)
}

// numericValues converts a row's items to the values charts show: numbers
// and booleans, finite ones only.
func numericValues(items []*runlogv1.Item, dst []rollup.Value) []rollup.Value {
	for _, it := range items {
		var v float64
		switch x := it.GetValue().GetKind().(type) {
		case *runlogv1.Value_DoubleValue:
			v = x.DoubleValue
		case *runlogv1.Value_IntValue:
			v = float64(x.IntValue)
		case *runlogv1.Value_BoolValue:
			if x.BoolValue {
				v = 1
			}
		default:
			continue
		}
		if rollup.Finite(v) {
			dst = append(dst, rollup.Value{Key: it.GetKey(), V: v})
		}
	}
	return dst
}

// prepareChartRow reads the numeric values of an encoded history record.
func prepareChartRow(seq uint64, data []byte, ev *replay.Event) (*chartRow, error) {
	row := &chartRow{step: ev.Step(), t: ev.Time()}
	err := replay.History(oneRecord{seq: seq, data: data}, replay.HistoryOptions{}, func(r replay.Row) error {
		row.step = r.Step
		row.vals = numericValues(r.Items, row.vals)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return row, nil
}

// loadRollup reads a run's builder. A run stored before the tiers existed
// has history but no builder: it is stale and answered from the records.
func loadRollup(rb *bolt.Bucket, hw uint64) (*rollup.Builder, error) {
	b := rollup.NewBuilder()
	if rb == nil {
		return b, nil
	}
	v := rb.Get(keyRollup)
	if v == nil {
		if hw > 0 {
			b.MarkStale()
		}
		return b, nil
	}
	if err := b.UnmarshalBinary(v); err != nil {
		return nil, err
	}
	return b, nil
}

// addChartRow folds a stored history row into the run's tiers, writing each
// block it completes.
func addChartRow(tx *bolt.Tx, runID string, rc *runCache, seq uint64, row *chartRow) error {
	if rc.roll.Stale() {
		return nil
	}
	return rc.roll.Add(seq, row.t, row.step, row.vals, func(blk *rollup.Block) error {
		rb := tx.Bucket(bucketRuns).Bucket([]byte(runID))
		tiers, err := rb.CreateBucketIfNotExists(bucketTiers)
		if err != nil {
			return fmt.Errorf("run %s tiers: %w", runID, err)
		}
		lb, err := tiers.CreateBucketIfNotExists([]byte{byte('0' + blk.Level)})
		if err != nil {
			return fmt.Errorf("run %s tier %d: %w", runID, blk.Level, err)
		}
		lb.FillPercent = 1.0
		var key [8]byte
		binary.BigEndian.PutUint64(key[:], blk.Index)
		if err := lb.Put(key[:], rollup.AppendBlock(nil, blk)); err != nil {
			return fmt.Errorf("run %s tier %d block %d: %w", runID, blk.Level, blk.Index, err)
		}
		return nil
	})
}

// saveRollup writes the run's builder.
func saveRollup(rb *bolt.Bucket, runID string, rc *runCache) error {
	v, err := rc.roll.MarshalBinary()
	if err != nil {
		return fmt.Errorf("run %s rollup: %w", runID, err)
	}
	if err := rb.Put(keyRollup, v); err != nil {
		return fmt.Errorf("put run %s rollup: %w", runID, err)
	}
	return nil
}

// txTiers reads a run's tiers and rows inside one read transaction.
type txTiers struct {
	runID string
	rb    *bolt.Bucket
	blk   rollup.Block
	vals  []rollup.Value
}

func (r *txTiers) Blocks(level int, first uint64, fn func(*rollup.Block) bool) error {
	tiers := r.rb.Bucket(bucketTiers)
	if tiers == nil {
		return nil
	}
	lb := tiers.Bucket([]byte{byte('0' + level)})
	if lb == nil {
		return nil
	}
	c := lb.Cursor()
	var key [8]byte
	binary.BigEndian.PutUint64(key[:], first)
	for k, v := c.Seek(key[:]); k != nil; k, v = c.Next() {
		if err := rollup.DecodeBlock(v, &r.blk); err != nil {
			return fmt.Errorf("run %s tier %d: %w", r.runID, level, err)
		}
		if !fn(&r.blk) {
			return nil
		}
	}
	return nil
}

var errStopRows = errors.New("store: stop rows")

func (r *txTiers) Rows(from, to uint64, fn func(seq uint64, t int64, step int64, vals []rollup.Value) bool) error {
	recs := r.rb.Bucket(bucketRecords)
	c := recs.Cursor()
	var key [8]byte
	binary.BigEndian.PutUint64(key[:], from)
	for k, v := c.Seek(key[:]); k != nil; k, v = c.Next() {
		seq := binary.BigEndian.Uint64(k)
		if seq > to {
			return nil
		}
		data, err := wire.Unframe(v)
		if err != nil {
			return &CorruptError{RunID: r.runID, Seq: seq, Err: err}
		}
		ev, err := replay.DecodeEvent(data)
		if err != nil {
			return &CorruptError{RunID: r.runID, Seq: seq, Err: err}
		}
		if ev.Kind() != replay.KindHistory {
			continue
		}
		row, err := prepareChartRow(seq, data, &ev)
		if err != nil {
			return fmt.Errorf("run %s seq %d: %w", r.runID, seq, err)
		}
		if !fn(seq, row.t, row.step, row.vals) {
			return nil
		}
	}
	return nil
}

// Chart answers a chart query from the run's history tiers: the cost is
// bounded by q.Points, not by the length of the run (see package rollup). A
// run whose tiers are stale (it was rewound, or stored before tiers
// existed) is answered by reading its whole history.
func (b *Bolt) Chart(ctx context.Context, runID string, q rollup.Query) (*rollup.Result, error) {
	if err := b.enter(); err != nil {
		return nil, err
	}
	defer b.leave()
	var (
		res   *rollup.Result
		stale bool
	)
	err := b.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketIndex).Get([]byte(runID)) == nil {
			return fmt.Errorf("run %s: %w", runID, ErrNotFound)
		}
		rb := tx.Bucket(bucketRuns).Bucket([]byte(runID))
		if rb == nil {
			return fmt.Errorf("run %s: indexed but has no records", runID)
		}
		var hw uint64
		if k, _ := rb.Bucket(bucketRecords).Cursor().Last(); k != nil {
			hw = binary.BigEndian.Uint64(k)
		}
		roll, err := loadRollup(rb, hw)
		if err != nil {
			return fmt.Errorf("run %s: %w", runID, err)
		}
		if roll.Stale() {
			stale = true
			return nil
		}
		res, err = rollup.Run(roll, &txTiers{runID: runID, rb: rb}, q)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("chart run %s: %w", runID, err)
	}
	if !stale {
		return res, nil
	}
	return chartFromSource(&source{b: b, ctx: ctx, runID: runID}, runID, q)
}

// chartFromSource folds the run's live history into tiers in memory and
// answers q from them.
func chartFromSource(src replay.Source, runID string, q rollup.Query) (*rollup.Result, error) {
	m := rollup.NewMem()
	err := replay.History(src, replay.HistoryOptions{}, func(r replay.Row) error {
		m.Add(r.Seq, 0, r.Step, numericValues(r.Items, nil))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("chart run %s: %w", runID, err)
	}
	// Rows read the history again rather than keep it in memory.
	m.RowsFunc = func(from, to uint64, fn func(uint64, int64, int64, []rollup.Value) bool) error {
		err := replay.History(src, replay.HistoryOptions{}, func(r replay.Row) error {
			if r.Seq < from {
				return nil
			}
			if r.Seq > to || !fn(r.Seq, 0, r.Step, numericValues(r.Items, nil)) {
				return errStopRows
			}
			return nil
		})
		if errors.Is(err, errStopRows) {
			return nil
		}
		return err
	}
	return rollup.Run(m.B, m, q)
}

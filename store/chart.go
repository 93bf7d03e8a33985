package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

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

// chartReader reads the numeric values of encoded history rows without
// decoding them, for the tiers. The rows one reader returns share their key
// strings and their value storage, so that a batch of rows costs a few
// allocations instead of several per item. It is not safe for concurrent
// use.
type chartReader struct {
	keys map[string]string // one string per key seen
	last []rollup.Value    // the previous row's values: its keys are reused first
	rows []chartRow        // storage for rows not yet handed out
	vals []rollup.Value    // empty, with room for the values of rows to come
}

// read returns the numeric values of the history record data, whose
// decoded event is ev. The row stays valid after later calls.
func (c *chartReader) read(data []byte, ev *replay.Event) (*chartRow, error) {
	if len(c.rows) == 0 {
		c.rows = make([]chartRow, 64)
	}
	row := &c.rows[0]
	c.rows = c.rows[1:]
	row.step, row.t = ev.Step(), ev.Time()
	if vals, ok := c.fast(data); ok {
		row.vals = vals[:len(vals):len(vals)]
		c.vals = vals[len(vals):]
	} else {
		// A layout the wire readers do not take: decode it in full.
		var rec runlogv1.Record
		if err := proto.Unmarshal(data, &rec); err != nil {
			return nil, err
		}
		row.vals = numericValues(rec.GetHistory().GetItems(), nil)
	}
	c.last = row.vals
	return row, nil
}

// fast returns the numeric values of data, a history row laid out as
// encoders write it, appended to c.vals (empty, with room for the rows to
// come); ok is false for any other layout.
func (c *chartReader) fast(data []byte) (vals []rollup.Value, ok bool) {
	h, err := wire.ParseHeader(data)
	if err != nil || h.Kind != wire.KindHistory || h.Payloads != 1 {
		return nil, false
	}
	vals = c.vals
	if cap(vals) < 16 {
		vals = make([]rollup.Value, 0, 1024)
	}
	_, ok = wire.NumericRow(h.Payload, func(key []byte, v float64) {
		if rollup.Finite(v) {
			vals = append(vals, rollup.Value{Key: c.key(key, len(vals)), V: v})
		}
	})
	if !ok {
		return nil, false
	}
	return vals, true
}

// key returns the string of key, the i-th numeric value of its row.
func (c *chartReader) key(key []byte, i int) string {
	if i < len(c.last) && c.last[i].Key == string(key) {
		return c.last[i].Key
	}
	if k, ok := c.keys[string(key)]; ok {
		return k
	}
	if c.keys == nil {
		c.keys = make(map[string]string)
	}
	k := string(key)
	c.keys[k] = k
	return k
}

// prepareChartRow reads the numeric values of an encoded history record.
// It allocates for one row: a caller of many rows keeps a chartReader.
func prepareChartRow(seq uint64, data []byte, ev *replay.Event) (*chartRow, error) {
	c := chartReader{rows: make([]chartRow, 1), vals: make([]rollup.Value, 0, 16)}
	return c.read(data, ev)
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

// tierWriter writes the blocks a run's builder completes. It is the
// writer's, one per cached run, and holds the run's tier buckets for the
// transaction in progress.
type tierWriter struct {
	runID  string
	tx     *bolt.Tx
	levels [rollup.Levels]*bolt.Bucket
	buf    *[]byte // the store's block encodings of this transaction
	done   func(*rollup.Block) error
}

func newTierWriter(runID string) *tierWriter {
	w := &tierWriter{runID: runID}
	w.done = w.put
	return w
}

// begin readies w for a transaction; bolt keeps the encodings it is given
// until the transaction ends, so they are appended to buf, which the
// writer empties only between transactions.
func (w *tierWriter) begin(tx *bolt.Tx, buf *[]byte) {
	if w.tx != tx {
		w.tx, w.levels = tx, [rollup.Levels]*bolt.Bucket{}
	}
	w.buf = buf
}

// end forgets the transaction.
func (w *tierWriter) end() {
	w.tx, w.levels, w.buf = nil, [rollup.Levels]*bolt.Bucket{}, nil
}

func (w *tierWriter) put(blk *rollup.Block) error {
	lb := w.levels[blk.Level]
	if lb == nil {
		rb := w.tx.Bucket(bucketRuns).Bucket([]byte(w.runID))
		tiers, err := rb.CreateBucketIfNotExists(bucketTiers)
		if err != nil {
			return fmt.Errorf("run %s tiers: %w", w.runID, err)
		}
		lb, err = tiers.CreateBucketIfNotExists([]byte{byte('0' + blk.Level)})
		if err != nil {
			return fmt.Errorf("run %s tier %d: %w", w.runID, blk.Level, err)
		}
		lb.FillPercent = 1.0
		w.levels[blk.Level] = lb
	}
	buf := *w.buf
	off := len(buf)
	buf = binary.BigEndian.AppendUint64(buf, blk.Index)
	buf = rollup.AppendBlock(buf, blk)
	*w.buf = buf
	if err := lb.Put(buf[off:off+8:off+8], buf[off+8:len(buf):len(buf)]); err != nil {
		return fmt.Errorf("run %s tier %d block %d: %w", w.runID, blk.Level, blk.Index, err)
	}
	return nil
}

// addChartRow folds a stored history row into the run's tiers, writing each
// block it completes.
func (b *Bolt) addChartRow(tx *bolt.Tx, rc *runCache, seq uint64, row *chartRow) error {
	if rc.roll.Stale() {
		return nil
	}
	rc.tiers.begin(tx, &b.blockBuf)
	return rc.roll.Add(seq, row.t, row.step, row.vals, rc.tiers.done)
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
	rows  chartReader
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
		row, err := r.rows.read(data, &ev)
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

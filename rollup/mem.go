package rollup

// Mem is a run's tiers held in memory: a Builder and the blocks it
// completed. It implements Reader's Blocks; Rows comes from the caller, who
// reads the run's records. It is not safe for concurrent use.
type Mem struct {
	B      *Builder
	blocks [Levels][]Block
	// RowsFunc reads the run's rows for Reader.Rows.
	RowsFunc func(from, to uint64, fn func(seq uint64, t int64, step int64, vals []Value) bool) error
}

// NewMem returns the tiers of an empty run.
func NewMem() *Mem { return &Mem{B: NewBuilder()} }

// Add folds one row in.
func (m *Mem) Add(seq uint64, t int64, step int64, vals []Value) {
	m.B.Add(seq, t, step, vals, func(blk *Block) error {
		c := *blk
		c.Keys = append([]KeyStat(nil), blk.Keys...)
		m.blocks[blk.Level] = append(m.blocks[blk.Level], c)
		return nil
	})
}

// Blocks implements Reader.
func (m *Mem) Blocks(level int, first uint64, fn func(*Block) bool) error {
	bs := m.blocks[level]
	for i := first; i < uint64(len(bs)); i++ {
		if !fn(&bs[i]) {
			return nil
		}
	}
	return nil
}

// Rows implements Reader.
func (m *Mem) Rows(from, to uint64, fn func(seq uint64, t int64, step int64, vals []Value) bool) error {
	return m.RowsFunc(from, to, fn)
}

var _ Reader = (*Mem)(nil)

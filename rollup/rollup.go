// Package rollup keeps a run's numeric history in downsampled tiers so that a
// chart of any step range is answered from a bounded number of reads, however
// long the run.
//
// # Tiers
//
// A run's live history rows are numbered 0, 1, 2, ... in log order. Level L
// (0, 1, 2) cuts them into blocks of Size(L) = 32, 1024 and 32768 rows; block
// i of level L covers rows [i*Size(L), (i+1)*Size(L)). A block holds, per
// numeric key, the count, minimum, maximum and last value with their steps,
// and for the whole block its first and last seq, step and time. Complete
// blocks never change; each level also has one partial block, the rows after
// its last complete block, so that every level on its own covers the whole
// history.
//
// A Builder is fed the rows as they are logged and hands back each block as
// it completes; the store persists them beside the records and the partial
// blocks with the run's state. A reader (the store's, or an in-memory one)
// answers Query.
//
// # Query cost
//
// Query walks down from the top level: it reads the top level's blocks that
// overlap the step range, and stops at the first level with at least
// Points/2 blocks in range (each block gives a minimum and a maximum point).
// A level below is only read inside the range the level above found, so each
// level reads at most about 32*Points/2 blocks. When even level 0 has fewer
// blocks than that, the range holds fewer than 16*Points rows, and they are
// read from the records at full resolution. The cost of a query is therefore
// bounded by the number of points asked for, plus one read of the top level
// (one block per 32768 rows).
//
// Steps of live rows never go back (the service refuses a step below the
// last one), so blocks are ordered by step. A rewind breaks that: a run with
// a rewind is marked stale by its owner, who then answers from the records.
package rollup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
)

// Levels is the number of tiers.
const Levels = 3

// fanout is how many blocks of a level make one of the level above.
const fanout = 32

// Size returns the number of rows of a complete block of level.
func Size(level int) uint64 {
	s := uint64(fanout)
	for i := 0; i < level; i++ {
		s *= fanout
	}
	return s
}

// Stat is one key's values within a block.
type Stat struct {
	N                          uint32
	Min, Max, Last             float64
	MinStep, MaxStep, LastStep int64
}

func (s *Stat) add(step int64, v float64) {
	if s.N == 0 || v < s.Min {
		s.Min, s.MinStep = v, step
	}
	if s.N == 0 || v > s.Max {
		s.Max, s.MaxStep = v, step
	}
	s.Last, s.LastStep = v, step
	s.N++
}

func (s *Stat) merge(o *Stat) {
	if o.N == 0 {
		return
	}
	if s.N == 0 || o.Min < s.Min {
		s.Min, s.MinStep = o.Min, o.MinStep
	}
	if s.N == 0 || o.Max > s.Max {
		s.Max, s.MaxStep = o.Max, o.MaxStep
	}
	if s.N == 0 || o.LastStep >= s.LastStep {
		s.Last, s.LastStep = o.Last, o.LastStep
	}
	s.N += o.N
}

// KeyStat is a Stat of the key with id ID in the run's key table.
type KeyStat struct {
	ID uint32
	Stat
}

// Block is a run of consecutive rows at one level.
type Block struct {
	Level               int
	Index               uint64 // rows [Index*Size(Level), ...)
	Rows                uint32
	FirstSeq, LastSeq   uint64
	FirstStep, LastStep int64
	FirstTime, LastTime int64
	Keys                []KeyStat // ordered by ID
}

// Value is one numeric item of a row.
type Value struct {
	Key string
	V   float64
}

func (b *Block) add(seq uint64, t int64, step int64, ids []uint32, vals []Value) {
	if b.Rows == 0 {
		b.FirstSeq, b.FirstStep, b.FirstTime = seq, step, t
	}
	b.LastSeq, b.LastStep, b.LastTime = seq, step, t
	b.Rows++
	// Rows log their keys in the same order, which is the order of their
	// ids: the stat after the last one is then the next one's, and the
	// search is only for a row that adds or skips a key.
	j := 0
	for i, id := range ids {
		if j < len(b.Keys) && b.Keys[j].ID == id {
			b.Keys[j].add(step, vals[i].V)
			j++
			continue
		}
		j = b.slot(id)
		b.Keys[j].add(step, vals[i].V)
		j++
	}
}

// slot returns the index in b.Keys of key id's stat, adding it in order.
func (b *Block) slot(id uint32) int {
	n := len(b.Keys)
	if n == 0 || b.Keys[n-1].ID < id {
		b.Keys = append(b.Keys, KeyStat{ID: id})
		return n
	}
	i := sort.Search(n, func(i int) bool { return b.Keys[i].ID >= id })
	if i < n && b.Keys[i].ID == id {
		return i
	}
	b.Keys = append(b.Keys, KeyStat{})
	copy(b.Keys[i+1:], b.Keys[i:])
	b.Keys[i] = KeyStat{ID: id}
	return i
}

// find returns the stat of key id, or nil.
func (b *Block) find(id uint32) *Stat {
	i := sort.Search(len(b.Keys), func(i int) bool { return b.Keys[i].ID >= id })
	if i < len(b.Keys) && b.Keys[i].ID == id {
		return &b.Keys[i].Stat
	}
	return nil
}

// Builder folds rows into blocks. It is not safe for concurrent use.
type Builder struct {
	names []string
	ids   map[string]uint32
	rows  uint64
	part  [Levels]Block
	stale bool
	ibuf  []uint32
}

// NewBuilder returns the builder of an empty run.
func NewBuilder() *Builder {
	b := &Builder{ids: map[string]uint32{}}
	for l := range b.part {
		b.part[l].Level = l
	}
	return b
}

// Rows returns the number of rows added.
func (b *Builder) Rows() uint64 { return b.rows }

// Keys returns the key table: the numeric keys in the order first seen.
// The slice must not be changed.
func (b *Builder) Keys() []string { return b.names }

// Stale reports whether a rewind made the tiers unusable.
func (b *Builder) Stale() bool { return b.stale }

// MarkStale records that the run was rewound: its tiers no longer describe
// its live rows.
func (b *Builder) MarkStale() { b.stale = true }

// Partial returns the partial block of level, nil when it has no rows.
func (b *Builder) Partial(level int) *Block {
	if b.part[level].Rows == 0 {
		return nil
	}
	return &b.part[level]
}

// Add folds one row in and calls done with each block it completes, lowest
// level first. done must not keep the block past the call.
func (b *Builder) Add(seq uint64, t int64, step int64, vals []Value, done func(*Block) error) error {
	if b.stale {
		return nil
	}
	b.ibuf = b.keyIDs(vals, b.ibuf)
	ids := b.ibuf
	b.rows++
	for l := range b.part {
		p := &b.part[l]
		p.add(seq, t, step, ids, vals)
		if uint64(p.Rows) == Size(l) {
			if err := done(p); err != nil {
				return err
			}
			next := p.Index + 1
			keys := p.Keys[:0]
			*p = Block{Level: l, Index: next, Keys: keys}
		}
	}
	return nil
}

// keyIDs returns the ids of the keys of vals in ids[:0], adding new keys to
// the table. A row with the keys of the row before, in the same order (most
// rows), takes that row's ids without a lookup.
func (b *Builder) keyIDs(vals []Value, ids []uint32) []uint32 {
	if len(ids) == len(vals) {
		same := true
		for i, v := range vals {
			if b.names[ids[i]] != v.Key {
				same = false
				break
			}
		}
		if same {
			return ids
		}
	}
	ids = ids[:0]
	for _, v := range vals {
		id, ok := b.ids[v.Key]
		if !ok {
			id = uint32(len(b.names))
			// The key may share a caller's buffer: the table keeps a copy.
			name := strings.Clone(v.Key)
			b.names = append(b.names, name)
			b.ids[name] = id
		}
		ids = append(ids, id)
	}
	return ids
}

// Errors returned by decoders.
var errShort = errors.New("rollup: truncated encoding")

// AppendBlock appends the encoding of blk to dst.
func AppendBlock(dst []byte, blk *Block) []byte {
	dst = binary.AppendUvarint(dst, uint64(blk.Level))
	dst = binary.AppendUvarint(dst, blk.Index)
	dst = binary.AppendUvarint(dst, uint64(blk.Rows))
	dst = binary.AppendUvarint(dst, blk.FirstSeq)
	dst = binary.AppendUvarint(dst, blk.LastSeq-blk.FirstSeq)
	dst = binary.AppendVarint(dst, blk.FirstStep)
	dst = binary.AppendVarint(dst, blk.LastStep-blk.FirstStep)
	dst = binary.AppendVarint(dst, blk.FirstTime)
	dst = binary.AppendVarint(dst, blk.LastTime-blk.FirstTime)
	dst = binary.AppendUvarint(dst, uint64(len(blk.Keys)))
	for i := range blk.Keys {
		k := &blk.Keys[i]
		dst = binary.AppendUvarint(dst, uint64(k.ID))
		dst = binary.AppendUvarint(dst, uint64(k.N))
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(k.Min))
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(k.Max))
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(k.Last))
		dst = binary.AppendVarint(dst, k.MinStep-blk.FirstStep)
		dst = binary.AppendVarint(dst, k.MaxStep-blk.FirstStep)
		dst = binary.AppendVarint(dst, k.LastStep-blk.FirstStep)
	}
	return dst
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) float() float64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.err = errShort
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if uint64(len(d.b)) < n {
		d.err = errShort
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// DecodeBlock decodes an encoding of AppendBlock into blk, reusing its
// key slice.
func DecodeBlock(data []byte, blk *Block) error {
	d := &decoder{b: data}
	blk.Level = int(d.uvarint())
	blk.Index = d.uvarint()
	blk.Rows = uint32(d.uvarint())
	blk.FirstSeq = d.uvarint()
	blk.LastSeq = blk.FirstSeq + d.uvarint()
	blk.FirstStep = d.varint()
	blk.LastStep = blk.FirstStep + d.varint()
	blk.FirstTime = d.varint()
	blk.LastTime = blk.FirstTime + d.varint()
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		return fmt.Errorf("decode block: %w", errShort)
	}
	blk.Keys = blk.Keys[:0]
	for i := uint64(0); i < n; i++ {
		var k KeyStat
		k.ID = uint32(d.uvarint())
		k.N = uint32(d.uvarint())
		k.Min = d.float()
		k.Max = d.float()
		k.Last = d.float()
		k.MinStep = blk.FirstStep + d.varint()
		k.MaxStep = blk.FirstStep + d.varint()
		k.LastStep = blk.FirstStep + d.varint()
		blk.Keys = append(blk.Keys, k)
	}
	if d.err != nil {
		return fmt.Errorf("decode block: %w", d.err)
	}
	return nil
}

// MarshalBinary encodes the builder: key table, row count, partial blocks.
func (b *Builder) MarshalBinary() ([]byte, error) {
	var dst []byte
	if b.stale {
		dst = append(dst, 1)
	} else {
		dst = append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, b.rows)
	dst = binary.AppendUvarint(dst, uint64(len(b.names)))
	for _, n := range b.names {
		dst = binary.AppendUvarint(dst, uint64(len(n)))
		dst = append(dst, n...)
	}
	for l := range b.part {
		blk := AppendBlock(nil, &b.part[l])
		dst = binary.AppendUvarint(dst, uint64(len(blk)))
		dst = append(dst, blk...)
	}
	return dst, nil
}

// UnmarshalBinary restores a builder encoded by MarshalBinary.
func (b *Builder) UnmarshalBinary(data []byte) error {
	if len(data) < 1 {
		return fmt.Errorf("decode rollup: %w", errShort)
	}
	nb := NewBuilder()
	nb.stale = data[0] == 1
	d := &decoder{b: data[1:]}
	nb.rows = d.uvarint()
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		return fmt.Errorf("decode rollup: %w", errShort)
	}
	for i := uint64(0); i < n; i++ {
		s := d.str()
		nb.ids[s] = uint32(len(nb.names))
		nb.names = append(nb.names, s)
	}
	for l := range nb.part {
		m := d.uvarint()
		if d.err != nil || m > uint64(len(d.b)) {
			return fmt.Errorf("decode rollup: %w", errShort)
		}
		if err := DecodeBlock(d.b[:m], &nb.part[l]); err != nil {
			return fmt.Errorf("decode rollup: %w", err)
		}
		d.b = d.b[m:]
	}
	if d.err != nil {
		return fmt.Errorf("decode rollup: %w", d.err)
	}
	*b = *nb
	return nil
}

// Clone returns a deep copy, for readers that answer queries while the
// builder keeps growing.
func (b *Builder) Clone() *Builder {
	c := &Builder{names: append([]string(nil), b.names...), rows: b.rows, stale: b.stale, ids: make(map[string]uint32, len(b.ids))}
	for k, v := range b.ids {
		c.ids[k] = v
	}
	for l := range b.part {
		c.part[l] = b.part[l]
		c.part[l].Keys = append([]KeyStat(nil), b.part[l].Keys...)
	}
	return c
}

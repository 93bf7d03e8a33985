package replay

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// Snapshot encoding: protobuf wire format with these fields, so that later
// versions can add fields and still read old snapshots.
const (
	snapVersion  = 1 // varint: snapshotVersion
	snapState    = 2 // bytes: runlog.v1.RunState (proto.Marshal of Proto())
	snapCounts   = 3 // bytes: packed varints, one count per Kind
	snapOutBytes = 4 // varint
	snapSegments = 5 // repeated bytes: zigzag first, zigzag last, n, stride, exact
	snapApprox   = 6 // varint bool
	snapStats    = 7 // bytes: the latest system-stats sample's SystemStats
	snapStatsSeq = 8 // varint
	snapStatsAt  = 9 // varint: its time, unix nanoseconds
)

const snapshotVersion = 1

// MarshalBinary encodes the state so that a store can keep it beside the
// records it was folded from and resume folding later (UnmarshalBinary).
func (s *State) MarshalBinary() ([]byte, error) {
	rs, err := proto.Marshal(s.Proto())
	if err != nil {
		return nil, fmt.Errorf("marshal state of run %s: %w", s.runID, err)
	}
	b := protowire.AppendTag(nil, snapVersion, protowire.VarintType)
	b = protowire.AppendVarint(b, snapshotVersion)
	b = protowire.AppendTag(b, snapState, protowire.BytesType)
	b = protowire.AppendBytes(b, rs)
	var counts []byte
	for _, c := range s.counts {
		counts = protowire.AppendVarint(counts, c)
	}
	b = protowire.AppendTag(b, snapCounts, protowire.BytesType)
	b = protowire.AppendBytes(b, counts)
	b = protowire.AppendTag(b, snapOutBytes, protowire.VarintType)
	b = protowire.AppendVarint(b, s.outBytes)
	var seg []byte
	for _, g := range s.history.segs {
		seg = seg[:0]
		seg = protowire.AppendVarint(seg, protowire.EncodeZigZag(g.first))
		seg = protowire.AppendVarint(seg, protowire.EncodeZigZag(g.last))
		seg = protowire.AppendVarint(seg, g.n)
		seg = protowire.AppendVarint(seg, g.stride)
		seg = protowire.AppendVarint(seg, protowire.EncodeBool(g.exact))
		b = protowire.AppendTag(b, snapSegments, protowire.BytesType)
		b = protowire.AppendBytes(b, seg)
	}
	b = protowire.AppendTag(b, snapApprox, protowire.VarintType)
	b = protowire.AppendVarint(b, protowire.EncodeBool(s.history.approx))
	if s.statsSeq != 0 {
		b = protowire.AppendTag(b, snapStats, protowire.BytesType)
		b = protowire.AppendBytes(b, s.stats)
		b = protowire.AppendTag(b, snapStatsSeq, protowire.VarintType)
		b = protowire.AppendVarint(b, s.statsSeq)
		b = protowire.AppendTag(b, snapStatsAt, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(s.statsTime))
	}
	return b, nil
}

// UnmarshalBinary restores a state encoded by MarshalBinary, replacing s.
func (s *State) UnmarshalBinary(data []byte) error {
	if err := s.unmarshal(data); err != nil {
		return fmt.Errorf("unmarshal run state: %w", err)
	}
	return nil
}

var errSnapshot = errors.New("malformed snapshot")

func (s *State) unmarshal(b []byte) error {
	n := NewState("")
	var (
		version uint64
		rs      runlogv1.RunState
		haveRS  bool
	)
	for len(b) > 0 {
		num, typ, m := protowire.ConsumeTag(b)
		if m < 0 {
			return fmt.Errorf("%w: %v", errSnapshot, protowire.ParseError(m))
		}
		b = b[m:]
		switch {
		case typ == protowire.VarintType && (num == snapVersion || num == snapOutBytes || num == snapApprox || num == snapStatsSeq || num == snapStatsAt):
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return fmt.Errorf("%w: field %d: %v", errSnapshot, num, protowire.ParseError(m))
			}
			b = b[m:]
			switch num {
			case snapVersion:
				version = v
			case snapOutBytes:
				n.outBytes = v
			case snapApprox:
				n.history.approx = protowire.DecodeBool(v)
			case snapStatsSeq:
				n.statsSeq = v
			case snapStatsAt:
				n.statsTime = int64(v)
			}
		case typ == protowire.BytesType && (num == snapState || num == snapCounts || num == snapSegments || num == snapStats):
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return fmt.Errorf("%w: field %d: %v", errSnapshot, num, protowire.ParseError(m))
			}
			b = b[m:]
			switch num {
			case snapState:
				if err := proto.Unmarshal(v, &rs); err != nil {
					return fmt.Errorf("%w: run state: %v", errSnapshot, err)
				}
				haveRS = true
			case snapStats:
				n.stats = append([]byte(nil), v...)
			case snapCounts:
				for i := 0; len(v) > 0; i++ {
					c, m := protowire.ConsumeVarint(v)
					if m < 0 {
						return fmt.Errorf("%w: counts: %v", errSnapshot, protowire.ParseError(m))
					}
					v = v[m:]
					if i < len(n.counts) {
						n.counts[i] = c
					}
				}
			case snapSegments:
				var f [5]uint64
				for i := range f {
					x, m := protowire.ConsumeVarint(v)
					if m < 0 {
						return fmt.Errorf("%w: segment: %v", errSnapshot, protowire.ParseError(m))
					}
					f[i], v = x, v[m:]
				}
				g := segment{
					first:  protowire.DecodeZigZag(f[0]),
					last:   protowire.DecodeZigZag(f[1]),
					n:      f[2],
					stride: f[3],
					exact:  protowire.DecodeBool(f[4]),
				}
				n.history.segs = append(n.history.segs, g)
				n.history.total += g.n
			}
		default:
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return fmt.Errorf("%w: field %d: %v", errSnapshot, num, protowire.ParseError(m))
			}
			b = b[m:]
		}
	}
	if version != snapshotVersion {
		return fmt.Errorf("%w: version %d, this build reads %d", errSnapshot, version, snapshotVersion)
	}
	if !haveRS {
		return fmt.Errorf("%w: no run state", errSnapshot)
	}
	if n.history.total != rs.GetHistoryRows() {
		return fmt.Errorf("%w: segments hold %d history rows, state says %d", errSnapshot, n.history.total, rs.GetHistoryRows())
	}
	n.runID = rs.GetRunId()
	if rs.Info != nil {
		n.info = copyInfo(rs.Info)
	}
	for _, it := range rs.GetConfig() {
		n.config[it.GetKey()] = copyValue(it.GetValue())
	}
	for _, it := range rs.GetSummary() {
		n.summary[it.GetKey()] = copyValue(it.GetValue())
	}
	if rs.Exit != nil {
		n.exit = &runlogv1.Exit{Code: rs.Exit.Code, Reason: rs.Exit.Reason, Message: rs.Exit.Message}
	}
	n.lastStep = rs.GetLastStep()
	n.lastSeq = rs.GetLastSeq()
	n.records = rs.GetRecords()
	n.firstTime = rs.GetStartTimeUnixNano()
	n.lastTime = rs.GetLastTimeUnixNano()
	*s = *n
	return nil
}

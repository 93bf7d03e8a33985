package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/rollup"
	"github.com/runlog/runlog/store"
)

// Store is what the hub's UI needs of its store: *store.Bolt has it.
type Store interface {
	store.Store
	// Chart answers a chart query from the run's history tiers.
	Chart(ctx context.Context, runID string, q rollup.Query) (*rollup.Result, error)
	// Changed returns a channel closed by the next commit that stores
	// records.
	Changed() <-chan struct{}
}

var _ Store = (*store.Bolt)(nil)

// HubSource serves the runs a hub's store holds.
type HubSource struct {
	st Store
}

// NewHubSource returns a Source over st.
func NewHubSource(st Store) *HubSource { return &HubSource{st: st} }

var _ Source = (*HubSource)(nil)

func notFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

// List implements Source.
func (h *HubSource) List(ctx context.Context) ([]Brief, error) {
	runs, err := h.st.ListRuns(ctx, store.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := make([]Brief, len(runs))
	for i, r := range runs {
		out[i] = Brief{ID: r.GetRunId(), Version: r.GetHighWater()}
	}
	return out, nil
}

// Run implements Source.
func (h *HubSource) Run(ctx context.Context, id string) (*Run, error) {
	e, st, err := h.st.Run(ctx, id)
	if err != nil {
		return nil, notFound(err)
	}
	return &Run{State: st, Seq: e.GetHighWater(), Digest: e.GetDigest(), Where: "hub"}, nil
}

// Chart implements Source.
func (h *HubSource) Chart(ctx context.Context, id string, q rollup.Query) (*rollup.Result, error) {
	res, err := h.st.Chart(ctx, id, q)
	return res, notFound(err)
}

// Records implements Source.
func (h *HubSource) Records(ctx context.Context, id string, from uint64, fn func(seq uint64, data []byte) error) error {
	return notFound(h.st.Records(ctx, id, from, fn))
}

// Verify implements Source: every stored record's checksum, that seqs run
// 1..high-water without a gap, that each record decodes, and that the
// digest of what was read is the digest the store keeps.
func (h *HubSource) Verify(ctx context.Context, id string) (*Verification, error) {
	e, _, err := h.st.Run(ctx, id)
	if err != nil {
		return nil, notFound(err)
	}
	v := &Verification{Problems: []Problem{}}
	d := store.NewDigest()
	var (
		next = uint64(1)
		rec  runlogv1.Record
		last = e.GetHighWater()
	)
	err = h.st.Records(ctx, id, 1, func(seq uint64, data []byte) error {
		if seq > last {
			return errStop
		}
		if seq != next {
			v.Problems = append(v.Problems, Problem{Seq: next, Kind: "gap", Message: fmt.Sprintf("records %d..%d are missing", next, seq-1)})
		}
		next = seq + 1
		v.Records++
		d.Add(data)
		if err := proto.Unmarshal(data, &rec); err != nil {
			v.Problems = append(v.Problems, Problem{Seq: seq, Kind: "decode", Message: err.Error()})
		} else if rec.GetSeq() != seq {
			v.Problems = append(v.Problems, Problem{Seq: seq, Kind: "seq", Message: fmt.Sprintf("record says seq %d", rec.GetSeq())})
		}
		if len(v.Problems) == 0 {
			v.LastGoodSeq = seq
		} else if v.FirstBadSeq == 0 {
			v.FirstBadSeq = v.Problems[0].Seq
		}
		return nil
	})
	var ce *store.CorruptError
	switch {
	case errors.As(err, &ce):
		v.Problems = append(v.Problems, Problem{Seq: ce.Seq, Kind: "checksum", Message: ce.Err.Error()})
		if v.FirstBadSeq == 0 {
			v.FirstBadSeq = ce.Seq
		}
	case err != nil && !errors.Is(err, errStop):
		return nil, err
	}
	if next <= last && v.FirstBadSeq == 0 {
		v.Problems = append(v.Problems, Problem{Seq: next, Kind: "gap", Message: fmt.Sprintf("records %d..%d are missing", next, last)})
		v.FirstBadSeq = next
	}
	match := bytes.Equal(d.Sum(), e.GetDigest())
	v.DigestMatch = &match
	if !match && len(v.Problems) == 0 {
		v.Problems = append(v.Problems, Problem{Kind: "digest", Message: "the records read do not give the digest the store keeps"})
	}
	return v, nil
}

// Wait implements Source.
func (h *HubSource) Wait(ctx context.Context, id string, after uint64) error {
	for {
		ch := h.st.Changed()
		hw, err := h.st.HighWater(ctx, id)
		if err != nil {
			return err
		}
		if hw > after {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

var errStop = errors.New("web: stop")

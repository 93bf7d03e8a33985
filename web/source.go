package web

import (
	"context"
	"errors"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/rollup"
)

// Source is what the UI reads runs from: the hub's store, or the runs under a
// local root. Implementations are safe for concurrent use.
type Source interface {
	// List returns every run's id and version (its last seq), cheaply: the
	// runs table re-reads only the runs whose version changed.
	List(ctx context.Context) ([]Brief, error)
	// Run returns one run's overview. It fails with an error matching
	// ErrNotFound for an unknown run.
	Run(ctx context.Context, id string) (*Run, error)
	// Chart answers a chart query for the run's history without reading
	// the whole run (see package rollup).
	Chart(ctx context.Context, id string, q rollup.Query) (*rollup.Result, error)
	// Records calls fn with each encoded record of the run from seq from,
	// in order, until fn returns an error (which Records returns).
	Records(ctx context.Context, id string, from uint64, fn func(seq uint64, data []byte) error) error
	// Verify checks the run's records.
	Verify(ctx context.Context, id string) (*Verification, error)
	// Wait returns once the run's last seq is above after, or with ctx's
	// error.
	Wait(ctx context.Context, id string, after uint64) error
}

// ErrNotFound is matched by the error of a Source for an unknown run.
var ErrNotFound = errors.New("web: run not found")

// Brief is a run's id and version.
type Brief struct {
	ID      string
	Version uint64
}

// Run is a run's overview.
type Run struct {
	State *runlogv1.RunState
	// Seq is the run's last seq: the version of everything else here.
	Seq uint64
	// Digest is the SHA-256 content digest of records 1..Seq, when known.
	Digest []byte
	// Upstreams is the sync status per upstream, for a local run.
	Upstreams []Upstream
	// Where says where the run was read from ("hub", "file", "service").
	Where string
}

// Upstream is how far a run is synced to one upstream.
type Upstream struct {
	Name  string `json:"name"`
	Seq   uint64 `json:"seq"`
	Error string `json:"error,omitempty"`
}

// Verification is the result of checking a run's records.
type Verification struct {
	Records     uint64    `json:"records"`
	LastGoodSeq uint64    `json:"last_good_seq"`
	FirstBadSeq uint64    `json:"first_bad_seq,omitempty"`
	Problems    []Problem `json:"problems"`
	// DigestMatch is set when the source keeps a digest and it equals the
	// digest of the records read.
	DigestMatch *bool `json:"digest_match,omitempty"`
}

// Problem is one thing wrong with a record.
type Problem struct {
	Seq     uint64 `json:"seq"`
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

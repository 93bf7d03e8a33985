package store

import (
	"context"
	"strings"

	"github.com/runlog/runlog/rollup"
)

// Served is a Store as a hub serves it: with the charts and the change
// signal of its web UI, and the place it lives. Bolt and Postgres are
// Served.
type Served interface {
	Store
	// Chart answers a chart query from the run's history tiers.
	Chart(ctx context.Context, runID string, q rollup.Query) (*rollup.Result, error)
	// Changed returns a channel closed by the next commit that stores
	// records.
	Changed() <-chan struct{}
	// Path names where the store lives: a directory, or the database
	// without its password.
	Path() string
}

var (
	_ Served = (*Bolt)(nil)
	_ Served = (*Postgres)(nil)
)

// URLOptions configure OpenURL: Bolt for a directory, Postgres for a
// database. The zero value is a working default for both.
type URLOptions struct {
	Bolt     Options
	Postgres PostgresOptions
}

// IsPostgresURL reports whether target names a PostgreSQL database
// (postgres://... or postgresql://...) rather than a directory.
func IsPostgresURL(target string) bool {
	return strings.HasPrefix(target, "postgres://") || strings.HasPrefix(target, "postgresql://")
}

// OpenURL opens the store that target names: with OpenPostgres when it is
// a PostgreSQL URL (IsPostgresURL), else with Open on the directory.
func OpenURL(ctx context.Context, target string, opts URLOptions) (Served, error) {
	// Each branch returns a nil interface on error, not a nil pointer in one.
	if IsPostgresURL(target) {
		p, err := OpenPostgres(ctx, target, opts.Postgres)
		if err != nil {
			return nil, err
		}
		return p, nil
	}
	b, err := Open(target, opts.Bolt)
	if err != nil {
		return nil, err
	}
	return b, nil
}

package sender

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/runlog/runlog/wal"
)

// MetaSyncMode is the wal meta key where the service keeps the sync mode a
// run was created with ("offline", "online" or absent).
const MetaSyncMode = wal.MetaSyncMode

// Target is one upstream a Follower syncs runs to.
type Target struct {
	// URL names the upstream: the cursor and error keys use it.
	URL string
	Up  Upstream
}

// Follower syncs the runs a service opens: for each run one Sender per
// target. It has the shape of the service's follower hook (mux.Follower).
// It is safe for concurrent use.
type Follower struct {
	targets []Target
	opts    Options
	log     *slog.Logger
}

// NewFollower returns a follower that syncs runs to targets with senders
// configured by opts (Drain and OnAck are not used).
func NewFollower(targets []Target, opts Options) *Follower {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts.Drain = false
	opts.OnAck = nil
	return &Follower{targets: targets, opts: opts, log: log}
}

// Wants reports whether the run needs a sender: it is not an offline run and
// it is still running or some target's cursor is behind its end.
func (f *Follower) Wants(runID string, l *wal.Log) bool {
	if mode, err := l.Meta(MetaSyncMode); err == nil && string(mode) == "offline" {
		return false
	}
	return len(f.behind(l)) > 0
}

// behind returns the targets that have something left to do for l.
func (f *Follower) behind(l *wal.Log) []Target {
	var out []Target
	for _, t := range f.targets {
		if !l.Finished() {
			out = append(out, t)
			continue
		}
		c, err := l.Cursor(CursorName(t.URL))
		if err != nil || c < l.LastSeq() {
			out = append(out, t)
		}
	}
	return out
}

// Follow runs a sender per target that is behind and returns when all have
// returned: when the run is finished and synced everywhere, when a sender
// stops for good (its error is kept in the run's meta and returned here), or
// when ctx is cancelled.
func (f *Follower) Follow(ctx context.Context, runID string, l *wal.Log) error {
	if mode, err := l.Meta(MetaSyncMode); err == nil && string(mode) == "offline" {
		return nil // never touch the network for an offline run
	}
	targets := f.behind(l)
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			opts := f.opts
			opts.Logger = f.log
			errs[i] = New(l, runID, t.URL, t.Up, opts).Run(ctx)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("follow run %s: %w", runID, err)
	}
	return nil
}

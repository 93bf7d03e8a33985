package mux

import (
	"context"

	"github.com/runlog/runlog/wal"
)

// Follower tails the runs the service opens, for example to sync them
// upstream. The service owns the goroutines: for every run it opens (new,
// resumed, or found at startup) it asks each follower Wants once and, if
// true, calls Follow in a goroutine of its own.
//
// Follow reads l (Scan, Read, Wait, Changed, cursors and meta) and must not
// append to it or close it. It returns when the run is finished
// (l.Finished()) and the follower has handled every record, or when ctx is
// cancelled at shutdown; its error is logged. The service closes the log only
// after its writer stopped and every Follow for the run returned, so a run
// stays open, after its exit record, until its followers are done.
//
// Wants decides cheaply whether the run needs following, from l's cursors
// and meta. It matters most at startup, when finished runs are opened only
// for the followers that want them and closed again otherwise. The run's
// sync mode is in l.Meta(MetaSyncMode): "offline", "online" or absent (the
// service's default); an offline run must never be sent anywhere.
type Follower interface {
	Wants(runID string, l *wal.Log) bool
	Follow(ctx context.Context, runID string, l *wal.Log) error
}

// The names of a run's log that the service and its followers share; see
// package wal for what each holds.
const (
	MetaSyncMode         = wal.MetaSyncMode
	MetaSyncErrorPrefix  = wal.MetaSyncErrorPrefix
	CursorUpstreamPrefix = wal.CursorUpstreamPrefix
)

// startFollowers asks every follower about r and starts those that want it;
// it reports whether any did. r.log is open and r is registered.
func (s *Service) startFollowers(r *run) bool {
	started := false
	for _, f := range s.opts.Followers {
		if !f.Wants(r.id, r.log) {
			continue
		}
		started = true
		r.follows.Add(1)
		go func() {
			defer r.follows.Done()
			if err := f.Follow(s.followCtx, r.id, r.log); err != nil && s.followCtx.Err() == nil {
				s.log.Error("follower stopped", "run", r.id, "err", err)
			}
		}()
	}
	return started
}

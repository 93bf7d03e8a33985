package mux

import (
	"fmt"
	"time"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wal"
)

// watch checks, every PollInterval, that attached client processes still
// run, closes runs that stayed without clients for the crash grace, and
// notices when the parent process is gone. The service owns it; it returns
// when shutdown begins.
func (s *Service) watch() {
	defer s.wg.Done()
	t := time.NewTicker(s.poll)
	defer t.Stop()
	parentGone := false
	for {
		select {
		case <-s.stopWatch:
			return
		case now := <-t.C:
			s.checkClients(now)
			if s.opts.ParentPID > 0 && !parentGone && !s.parent.alive(s.alive) {
				parentGone = true
				s.log.Info("parent process is gone; exiting once no run is open", "pid", s.opts.ParentPID)
			}
			if parentGone {
				s.mu.Lock()
				idle := len(s.runs) == 0
				s.mu.Unlock()
				if idle {
					close(s.parentGone)
					return
				}
			}
		}
	}
}

// checkClients detaches clients whose process is gone and writes a
// synthesized crashed exit for runs that waited out the grace.
func (s *Service) checkClients(now time.Time) {
	for _, r := range s.openRuns() {
		r.mu.Lock()
		if r.finished || r.finishing || r.stopping {
			r.mu.Unlock()
			continue
		}
		s.detachGoneLocked(r, now)
		if len(r.attached) > 0 || r.orphanSince.IsZero() || now.Sub(r.orphanSince) < s.grace {
			r.mu.Unlock()
			continue
		}
		if r.log.Refused() != nil {
			// A damaged log takes no exit record either; it stays as it
			// is, readable up to the damage (startup logged it).
			r.mu.Unlock()
			continue
		}
		why := r.orphanWhy
		exit := worse(r.pendingExit, &runlogv1.Exit{
			Reason:  runlogv1.ExitReason_EXIT_REASON_CRASHED,
			Message: fmt.Sprintf("%s; no client re-attached within %s", why, s.grace),
		})
		r.beginExitLocked()
		r.mu.Unlock()
		body, err := encodeBody(&runlogv1.Record{Synthesized: true, Payload: &runlogv1.Record_Exit{Exit: exit}})
		if err == nil {
			s.log.Warn("closing run as crashed", "run", r.id, "why", why, "grace", s.grace)
			// The writer reports a failure (a full disk); the run then stays
			// open and the next check tries again.
			_, err = r.pushOwn(wal.Encoded{Body: body}, true)
		}
		if err != nil {
			s.log.Error("write synthesized exit", "run", r.id, "err", err)
			r.mu.Lock()
			if r.finishing {
				r.endExitLocked()
			}
			r.mu.Unlock()
		}
	}
}

// detachGoneLocked detaches the clients of r whose process is gone, as the
// poll does and as Finish does before it decides whether others remain.
// r.mu must be held.
func (s *Service) detachGoneLocked(r *run, now time.Time) {
	for c, p := range r.attached {
		if !p.alive(s.alive) {
			r.detachLocked(c, now, fmt.Sprintf("client %s (pid %d) exited without finishing the run", c, p.pid))
			s.log.Warn("client process is gone without finishing", "run", r.id, "client", c, "pid", p.pid)
		}
	}
}

package wandbgate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/runlog/runlog/client"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// sharedRun is one runlog run that one or more wandb streams write to:
// several SDK processes logging to one run id (wandb's shared mode) share
// it. All of them publish through one client.Run, so their records reach
// the service in the order the gate took them, and their rows get steps
// that never go down across processes. It is safe for concurrent use.
type sharedRun struct {
	g  *Gate
	id string

	mu   sync.Mutex // protects the fields below and orders publishes
	run  *client.Run
	refs int   // streams attached and not yet exited
	next int64 // the lowest step the next row may have
	// exit is the exit the run finishes with: the first that failed, else
	// the last.
	exit     *runlogv1.Exit
	finished bool
	// pending are records taken from the SDK and not yet handed to the
	// client, at most holdRecords of them and for at most holdFor: the
	// SDK's log() awaits no answer, and the service commits a batch of
	// rows for about the cost of one. Whatever awaits durability (exit,
	// get_summary) hands them over first.
	pending []*runlogv1.Record
	timer   *time.Timer // hands pending over after holdFor
	// err is the first error of a hand-over the timer made; the next
	// publish returns it.
	err error
}

// How long and how many records the gate holds before handing them to the
// client.
const (
	holdFor     = 5 * time.Millisecond
	holdRecords = 512
)

// attach opens the run on its first stream and counts the stream in.
func (g *Gate) attach(id string, open func() (*client.Run, error)) (*sharedRun, bool, error) {
	g.mu.Lock()
	sr := g.runs[id]
	if sr == nil || sr.closedLocked() {
		sr = &sharedRun{g: g, id: id}
		g.runs[id] = sr
	}
	g.mu.Unlock()
	sr.mu.Lock()
	defer sr.mu.Unlock()
	first := sr.run == nil
	if first {
		run, err := open()
		if err != nil {
			return nil, false, err
		}
		sr.run = run
		sr.next = run.StartStep()
	}
	sr.refs++
	return sr, first, nil
}

// closedLocked reports whether the run finished; g.mu held.
func (sr *sharedRun) closedLocked() bool {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	return sr.finished
}

// publish writes rec. A row whose step is below the run's next one, which
// another process's rows moved on, is written at the next step instead:
// the rows of several processes interleave in arrival order, none dropped.
func (sr *sharedRun) publish(ctx context.Context, rec *runlogv1.Record) error {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	if h := rec.GetHistory(); h != nil {
		if h.Step < sr.next {
			h.Step = sr.next
		}
		sr.next = h.Step + 1
	}
	if err := sr.err; err != nil {
		sr.err = nil
		return err
	}
	sr.pending = append(sr.pending, rec)
	if len(sr.pending) >= holdRecords {
		return sr.handOverLocked(ctx)
	}
	if len(sr.pending) == 1 {
		if sr.timer == nil {
			sr.timer = time.AfterFunc(holdFor, sr.handOverLater)
		} else {
			sr.timer.Reset(holdFor)
		}
	}
	return nil
}

// handOverLater is the timer's hand-over.
func (sr *sharedRun) handOverLater() {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), sr.g.opts.FinishTimeout)
	defer cancel()
	if err := sr.handOverLocked(ctx); err != nil && sr.err == nil {
		sr.err = err
	}
}

// handOverLocked publishes the pending records through the client.
func (sr *sharedRun) handOverLocked(ctx context.Context) error {
	if sr.timer != nil {
		sr.timer.Stop()
	}
	for i, rec := range sr.pending {
		if err := sr.run.Publish(ctx, rec); err != nil {
			sr.pending = append(sr.pending[:0], sr.pending[i+1:]...)
			return err
		}
		sr.pending[i] = nil
	}
	sr.pending = sr.pending[:0]
	return nil
}

// detach counts a stream out with its exit (nil when its connection went
// away first). The last stream out finishes the run; the others wait only
// until what they sent is durable.
func (sr *sharedRun) detach(ctx context.Context, e *runlogv1.Exit) error {
	sr.mu.Lock()
	if e == nil {
		e = &runlogv1.Exit{Code: 1, Reason: runlogv1.ExitReason_EXIT_REASON_CRASHED, Message: "wandb SDK disconnected before finishing"}
	}
	if sr.exit == nil || sr.exit.GetCode() == 0 {
		sr.exit = e
	}
	sr.refs--
	if err := sr.handOverLocked(ctx); err != nil {
		sr.mu.Unlock()
		return fmt.Errorf("run %s: %w", sr.id, err)
	}
	if sr.refs > 0 {
		err := sr.run.Flush(ctx)
		sr.mu.Unlock()
		if err != nil {
			return fmt.Errorf("flush run %s: %w", sr.id, err)
		}
		return nil
	}
	err := sr.run.FinishWith(ctx, int(sr.exit.GetCode()), sr.exit.GetReason(), sr.exit.GetMessage())
	var rej *client.RejectedError
	sr.finished = err == nil || errors.As(err, &rej)
	sr.mu.Unlock()
	// g.mu is taken after sr.mu is released: attach takes them the other
	// way round.
	sr.g.mu.Lock()
	if sr.g.runs[sr.id] == sr {
		delete(sr.g.runs, sr.id)
	}
	sr.g.mu.Unlock()
	return err
}

// flush waits until every record published so far is durable.
func (sr *sharedRun) flush(ctx context.Context) error {
	sr.mu.Lock()
	err := sr.handOverLocked(ctx)
	run := sr.run
	sr.mu.Unlock()
	if err != nil {
		return err
	}
	return run.Flush(ctx)
}

func (sr *sharedRun) step() int64 {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	return sr.next
}

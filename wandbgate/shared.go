package wandbgate

import (
	"context"
	"errors"
	"fmt"
	"sync"

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
}

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
	return sr.run.Publish(ctx, rec)
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
	run := sr.run
	sr.mu.Unlock()
	return run.Flush(ctx)
}

func (sr *sharedRun) step() int64 {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	return sr.next
}

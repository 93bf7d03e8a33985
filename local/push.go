package local

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runlog/runlog/root"
	"github.com/runlog/runlog/sender"
	"github.com/runlog/runlog/wal"
)

// Results of one run's push.
const (
	Synced   = "synced"     // records were sent and acknowledged
	UpToDate = "up_to_date" // the upstream held everything already
	Damaged  = "damaged"    // the valid prefix went, then a damaged record
	Failed   = "failed"     // the upstream refused or could not be reached
	Skipped  = "skipped"    // a process that is not a service holds the log
)

// Pushed is the outcome of one run's push, as runlog sync reports it.
type Pushed struct {
	RunID  string `json:"run_id"`
	Result string `json:"result"`
	// Sent is how many records the upstream gained.
	Sent uint64 `json:"sent"`
	// HighWater is the upstream's mark after the push (records
	// 1..high_water).
	HighWater  uint64  `json:"high_water"`
	LastSeq    uint64  `json:"last_seq"`
	DamagedSeq uint64  `json:"damaged_seq,omitempty"`
	Error      string  `json:"error,omitempty"`
	Seconds    float64 `json:"seconds"`
	// ThroughService is set when a running service held the log and the
	// records were read through it.
	ThroughService bool `json:"through_service,omitempty"`
}

// PushAll pushes the runs ids of root d to the upstream t, parallel at a
// time, each with a draining sender.Sender (Push), and returns their
// outcomes in the order of ids. opts configure every sender; its Drain and
// OnAck are Push's. sent and done, when not nil, count the records the
// upstream gained and the runs finished, as they happen.
func PushAll(ctx context.Context, d root.Dir, ids []string, t sender.Target, parallel int, opts sender.Options, sent, done *atomic.Uint64) []Pushed {
	out := make([]Pushed, len(ids))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(max(parallel, 1), max(len(ids), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				out[i] = Push(ctx, d, ids[i], t, opts, sent)
				if done != nil {
					done.Add(1)
				}
			}
		}()
	}
	for i := range ids {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return out
}

// Push pushes run id of root d to the upstream t with one draining
// sender.Sender until the upstream holds every record the log holds: from
// the log file, opened read-write so that the sender's cursor and last
// error are kept beside the records, or through the service that holds it.
// A run another process holds is Skipped, that process named.
func Push(ctx context.Context, d root.Dir, id string, t sender.Target, opts sender.Options, sent *atomic.Uint64) (res Pushed) {
	start := time.Now()
	res = Pushed{RunID: id}
	defer func() { res.Seconds = time.Since(start).Seconds() }()
	run, err := Open(ctx, RunRef(d, id), Options{Write: true, LockTimeout: 200 * time.Millisecond})
	var held *HeldError
	switch {
	case errors.As(err, &held):
		res.Result, res.Error = Skipped, err.Error()
		return res
	case errors.Is(err, wal.ErrNotExist):
		res.Result, res.Error = Failed, fmt.Sprintf("no run %s under %s", id, d)
		return res
	case err != nil:
		res.Result, res.Error = Failed, err.Error()
		return res
	}
	defer run.Close()
	res.ThroughService = run.ThroughService()
	opts.Drain = true
	opts.OnAck = func(_, added uint64) {
		res.Sent += added
		if sent != nil {
			sent.Add(added)
		}
	}
	src := run.Source()
	s := sender.New(src, id, t.URL, t.Up, opts)
	err = s.Run(ctx)
	if run.File != nil {
		if d := run.File.Damage(); err == nil && d != nil {
			err = d // the valid prefix is synced; the log ends in damage
		}
	}
	res.HighWater, res.LastSeq = s.Acked(), src.LastSeq()
	var corrupt *wal.CorruptError
	switch {
	case err == nil && res.Sent > 0:
		res.Result = Synced
	case err == nil:
		res.Result = UpToDate
	case errors.As(err, &corrupt):
		res.Result, res.DamagedSeq = Damaged, corrupt.Seq
		res.Error = fmt.Sprintf("damaged record at seq %d: %v", corrupt.Seq, corrupt.Err)
	default:
		res.Result, res.Error = Failed, err.Error()
	}
	return res
}

package mux

import (
	"time"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wal"
)

// DefaultStatsInterval is how often a run gets a system-stats record when
// neither the service nor the run's Init chooses.
const DefaultStatsInterval = 10 * time.Second

// minStatsInterval bounds how often a client may ask for samples.
const minStatsInterval = 100 * time.Millisecond

// Sampler samples the machine for the runs' system-stats records. Host is
// called once per tick, whatever the number of runs due; Processes once per
// due run, with the pids of the run's attached clients. Both add key and
// value pairs. Calls are not concurrent.
type Sampler interface {
	Host(add func(key string, v float64))
	Processes(pids []int, add func(key string, v float64))
}

// setStats applies an Init's stats choice to r.
func (s *Service) setStats(r *run, req *runlogv1.InitRequest) {
	if s.opts.Sampler == nil {
		return
	}
	every := s.opts.StatsInterval
	if ms := req.GetStatsIntervalMs(); ms > 0 {
		every = max(time.Duration(ms)*time.Millisecond, minStatsInterval)
	}
	if req.GetStatsDisabled() {
		every = 0
	}
	r.mu.Lock()
	if r.statsEvery != every && every > 0 {
		// On a grid of the interval, so that runs with the same interval
		// are due together and share one host sample.
		r.statsNext = time.Now().Truncate(every).Add(every)
	}
	r.statsEvery = every
	r.mu.Unlock()
	select {
	case s.statsWake <- struct{}{}:
	default:
	}
}

// sampleLoop writes a system-stats record into every run that is due, then
// sleeps until the next one is. It returns when shutdown begins.
func (s *Service) sampleLoop() {
	defer s.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		next := s.sampleDue(time.Now())
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		t.Reset(wait)
		select {
		case <-s.stopWatch:
			return
		case <-s.statsWake:
		case <-t.C:
		}
	}
}

// due is a run that gets a sample now, and the pids of its clients.
type due struct {
	r    *run
	pids []int
}

// sampleDue samples the host once and writes a record into each run whose
// time has come; it returns the earliest next time, zero when no run
// samples.
func (s *Service) sampleDue(now time.Time) time.Time {
	var (
		next time.Time
		runs []due
	)
	for _, r := range s.openRuns() {
		r.mu.Lock()
		if r.statsEvery > 0 && !r.finished && !r.finishing && !r.stopping && len(r.attached) > 0 {
			if !r.statsNext.After(now) {
				d := due{r: r}
				for _, p := range r.attached {
					d.pids = append(d.pids, p.pid)
				}
				runs = append(runs, d)
				// Keep to the grid, skipping ticks missed in a stall.
				r.statsNext = now.Truncate(r.statsEvery).Add(r.statsEvery)
			}
			if next.IsZero() || r.statsNext.Before(next) {
				next = r.statsNext
			}
		}
		r.mu.Unlock()
	}
	if len(runs) == 0 {
		return next
	}
	start := time.Now()
	var host []*runlogv1.Item
	s.opts.Sampler.Host(func(k string, v float64) { host = append(host, floatItem(k, v)) })
	for _, d := range runs {
		items := append([]*runlogv1.Item(nil), host...)
		s.opts.Sampler.Processes(d.pids, func(k string, v float64) { items = append(items, floatItem(k, v)) })
		body, err := encodeBody(&runlogv1.Record{Payload: &runlogv1.Record_Stats{Stats: &runlogv1.SystemStats{Items: items}}})
		if err != nil {
			s.log.Error("encode system stats", "run", d.r.id, "err", err)
			continue
		}
		// The writer answers on a buffered channel; nobody needs to wait.
		// A run that stopped taking records in the meantime refuses it.
		if _, err := d.r.pushOwn(wal.Encoded{Body: body}, false); err == nil {
			s.metrics.samples.Inc()
		}
	}
	s.metrics.sampleDur.Observe(time.Since(start).Seconds())
	return next
}

func floatItem(k string, v float64) *runlogv1.Item {
	return &runlogv1.Item{Key: k, Value: &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: v}}}
}

package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runlog/runlog/client"
	"github.com/runlog/runlog/root"
)

// Options say what Run logs and where. Root and Binary are required; a zero
// count means 1.
type Options struct {
	// Root is the runlog root the service runs on and the runs are written
	// under. No service may run there yet.
	Root root.Dir
	// Binary is the runlog executable the client starts the service with,
	// and ServiceArgs the flags it adds (--metrics-listen, say).
	Binary      string
	ServiceArgs []string
	// Runs log in parallel, Records history rows each, of Keys float
	// metrics a row.
	Runs, Records, Keys int
	// Rate is the total offered records/s over all runs, paced to the
	// millisecond; 0 logs as fast as the client takes them.
	Rate float64
	// BatchRecords and Linger are the client's (0: its defaults).
	BatchRecords int
	Linger       time.Duration
	// Progress, when set, is called every ProgressEvery (default 5s) while
	// the runs log, from a goroutine of Run's, with the records acked so
	// far and the time since the first log call.
	Progress      func(acked uint64, elapsed time.Duration)
	ProgressEvery time.Duration
	// OnRestart, when set, is called when another service has taken the
	// root's lock from the one before it (which died).
	OnRestart func(oldPID, newPID int)
}

// Result is what Run measured. Its JSON form is what runlog bench --json
// prints.
type Result struct {
	Runs          int     `json:"runs"`
	Records       int     `json:"records"` // per run
	Keys          int     `json:"keys"`
	OfferedRate   float64 `json:"offered_rate,omitempty"`
	Acked         uint64  `json:"acked"`
	Seconds       float64 `json:"seconds"`
	RecordsPerSec float64 `json:"records_per_sec"`
	AckP50Ms      float64 `json:"ack_p50_ms"`
	AckP99Ms      float64 `json:"ack_p99_ms"`
	AckMaxMs      float64 `json:"ack_max_ms"`
	// ServiceRSSMaxMB is the service's peak resident memory (VmHWM), MiB:
	// the largest of every service process's when it was restarted.
	ServiceRSSMaxMB float64 `json:"service_rss_max_mb"`
	// ServiceAnonMaxMB and ServiceFileMaxMB are the largest anonymous
	// (heap, stacks: RssAnon) and file-backed (the logs' mmap, the
	// executable: RssFile) resident memory seen in the watch's samples, MiB.
	// Pages of a mapped log count as file-backed and the kernel may drop
	// them; anonymous pages are what the service costs.
	ServiceAnonMaxMB float64 `json:"service_anon_max_mb"`
	ServiceFileMaxMB float64 `json:"service_file_max_mb"`
	// ServiceCPUSeconds is the user and system CPU time of the services
	// this bench started (reaped children): on a shared machine a steadier
	// measure of the service's cost than the wall-clock rate.
	ServiceCPUSeconds float64 `json:"service_cpu_seconds"`
	// ServiceRestarts counts the service processes started after the first
	// one: each is a service that died (SIGKILLed, say) and was started
	// again by the client, which then resent what was not acknowledged.
	ServiceRestarts uint64 `json:"service_restarts"`
	Batches         uint64 `json:"batches"`
	WindowWaits     uint64 `json:"window_waits"`
	// Verified is true when every acked record is in the logs once, with
	// gap-free sequences; Problems says what is wrong otherwise.
	Verified bool     `json:"verified"`
	Problems []string `json:"problems,omitempty"`
}

// Run starts a service on o.Root, logs o.Runs runs through the client,
// finishes them, stops the service and verifies the logs. An error means
// the load could not be run; a failed verification is in the Result.
func Run(ctx context.Context, o Options) (*Result, error) {
	o.Runs, o.Records, o.Keys = max(o.Runs, 1), max(o.Records, 1), max(o.Keys, 1)
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 5 * time.Second
	}
	rootPath := string(o.Root)
	sock := "unix://" + o.Root.Socket()
	if c, err := client.Connect(ctx, client.Options{Root: rootPath, Address: sock, NoStart: true}); err == nil {
		pid := c.ServicePID()
		c.Close()
		return nil, fmt.Errorf("a service is already running on %s (pid %d); bench needs a root of its own", o.Root, pid)
	}

	lat := new(Histogram)
	var lastAck atomic.Int64 // nanoseconds since start of the latest ack
	var start time.Time
	startSet := make(chan struct{})
	c, err := client.Connect(ctx, client.Options{
		Root:         rootPath,
		Address:      sock,
		Binary:       o.Binary,
		ServiceArgs:  o.ServiceArgs,
		BatchRecords: o.BatchRecords,
		Linger:       o.Linger,
		OnAck: func(runID string, l []time.Duration) {
			// Called only by the client's receiver goroutine.
			for _, d := range l {
				lat.Add(d)
			}
			select {
			case <-startSet:
				lastAck.Store(int64(time.Since(start)))
			default:
			}
		},
	})
	if err != nil {
		return nil, err
	}
	closed := false
	defer func() {
		if !closed {
			c.Close()
		}
	}()
	if c.ServicePID() == 0 {
		return nil, fmt.Errorf("cannot tell the service's pid from %s", o.Root.Lock())
	}
	// The service may be killed and started again under the load: follow
	// whichever one is current.
	w := startWatch(rootPath, o.OnRestart)
	defer w.stop()

	runs := make([]*client.Run, o.Runs)
	for i := range runs {
		// No config: every acked record of the run is a history row.
		runs[i], err = c.Init(ctx, client.RunOptions{Project: "bench", Name: fmt.Sprintf("bench-%d", i)})
		if err != nil {
			return nil, err
		}
	}
	keys := make([]string, o.Keys)
	for k := range keys {
		keys[k] = fmt.Sprintf("metric/%d", k)
	}

	errs := make([]error, o.Runs)
	var wg sync.WaitGroup
	perRun := o.Rate / float64(o.Runs)
	start = time.Now()
	close(startSet)
	stopProgress := progressLoop(c, o, start)
	for i, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = logRun(ctx, r, keys, o.Records, perRun, start)
		}()
	}
	wg.Wait()
	stopProgress()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, r := range runs {
		if err := r.Finish(ctx, 0); err != nil {
			return nil, err
		}
	}
	w.stop()
	// Close waits for the client's receiver, so the histogram is complete
	// and no longer written to after it.
	closed = true
	if err := c.Close(); err != nil {
		return nil, err
	}
	st := c.Stats()
	elapsed := time.Duration(lastAck.Load())
	res := &Result{
		Runs:        o.Runs,
		Records:     o.Records,
		Keys:        o.Keys,
		OfferedRate: o.Rate,
		// Records whose ack was lost with a killed service are
		// acknowledged when the run re-attaches, without a latency: the
		// client's count has them, the histogram does not.
		Acked:       st.Acked,
		Seconds:     elapsed.Seconds(),
		AckP50Ms:    ms(lat.Quantile(0.50)),
		AckP99Ms:    ms(lat.Quantile(0.99)),
		AckMaxMs:    ms(lat.Max()),
		Batches:     st.Batches,
		WindowWaits: st.WindowWaits,
	}
	if elapsed > 0 {
		res.RecordsPerSec = float64(res.Acked) / elapsed.Seconds()
	}
	if st.Started > 0 {
		res.ServiceRestarts = st.Started - 1
	}
	if pid := w.current(); pid > 0 {
		if err := stopService(pid, 60*time.Second); err != nil {
			return nil, err
		}
	}
	// Every service was this process's child and is reaped now (the last
	// by stopService, killed ones by the client): the kernel's largest
	// child peak covers a service killed between two samples.
	res.ServiceRSSMaxMB = max(w.peak(), childrenPeakRSS())
	res.ServiceCPUSeconds = childrenCPU()
	res.ServiceAnonMaxMB, res.ServiceFileMaxMB = w.peakKinds()
	ids := make([]string, len(runs))
	for i, r := range runs {
		ids[i] = r.ID()
	}
	total := uint64(o.Runs * o.Records)
	res.Problems = Verify(o.Root, ids, o.Records)
	if res.Acked != total {
		res.Problems = append(res.Problems, fmt.Sprintf("acked %d history rows, logged %d", res.Acked, total))
	}
	res.Verified = len(res.Problems) == 0
	return res, nil
}

// progressLoop calls o.Progress every o.ProgressEvery until the returned
// function is called, which waits for it to stop.
func progressLoop(c *client.Client, o Options, start time.Time) (stop func()) {
	if o.Progress == nil {
		return func() {}
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(o.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				o.Progress(c.Stats().Acked, time.Since(start))
			}
		}
	}()
	return func() { close(quit); <-done }
}

// logRun logs n rows, paced at rate rows/s when rate > 0, then flushes.
func logRun(ctx context.Context, r *client.Run, keys []string, n int, rate float64, start time.Time) error {
	vals := make([]float64, len(keys))
	for i := 0; i < n; i++ {
		if rate > 0 {
			// Log what is due by now, then sleep about a millisecond: paced
			// to the millisecond rather than in bursts.
			if due := int(time.Since(start).Seconds() * rate); i >= due {
				next := start.Add(time.Duration(float64(i+1) / rate * float64(time.Second)))
				time.Sleep(min(time.Until(next), time.Millisecond))
				i--
				continue
			}
		}
		for k := range vals {
			vals[k] = float64(i) * float64(k+1) / 1000
		}
		if err := r.LogFloats(int64(i), keys, vals); err != nil {
			return fmt.Errorf("run %s: %w", r.ID(), err)
		}
	}
	return r.Flush(ctx)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

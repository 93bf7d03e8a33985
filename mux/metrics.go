package mux

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the service's Prometheus metrics. They are always counted
// (atomics, a few per commit) and registered only on Options.Metrics.
type metrics struct {
	reg        prometheus.Registerer
	collectors []prometheus.Collector

	records   prometheus.Counter
	bytes     prometheus.Counter
	commits   prometheus.Counter
	perCommit prometheus.Histogram
	commitDur prometheus.Histogram
	syncDur   prometheus.Histogram
	ackDur    prometheus.Histogram
	refused   *prometheus.CounterVec
	streams   prometheus.Gauge
	samples   prometheus.Counter
	sampleDur prometheus.Histogram
}

// latencyBuckets span 100µs to about 6.5s, for fsyncs and acks.
var latencyBuckets = prometheus.ExponentialBuckets(0.0001, 2, 17)

func newMetrics(s *Service, reg prometheus.Registerer) *metrics {
	m := &metrics{
		reg: reg,
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "runlog_records_appended_total",
			Help: "Records written to run logs (resends of durable records are not written again).",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "runlog_appended_bytes_total",
			Help: "Encoded record bytes written to run logs.",
		}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "runlog_commits_total",
			Help: "Transactions committed to run logs, each one fsync.",
		}),
		perCommit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "runlog_commit_records",
			Help:    "Records per commit: above one is group commit at work.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 13), // 1 .. 4096
		}),
		commitDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "runlog_commit_duration_seconds",
			Help:    "Time to write one commit to a run's log, fsync included.",
			Buckets: latencyBuckets,
		}),
		syncDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "runlog_commit_sync_duration_seconds",
			Help:    "Time one commit spent writing its pages and syncing them (fsync).",
			Buckets: latencyBuckets,
		}),
		ackDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "runlog_ack_duration_seconds",
			Help:    "Time from a Publish batch being queued to its answer (durable or refused).",
			Buckets: latencyBuckets,
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runlog_records_refused_total",
			Help: "Published records refused, by reason.",
		}, []string{"reason"}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "runlog_publish_streams",
			Help: "Publish streams open.",
		}),
		samples: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "runlog_system_samples_total",
			Help: "System stats records written to runs.",
		}),
		sampleDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "runlog_system_sample_duration_seconds",
			Help:    "Time to sample the machine once for every run that is due.",
			Buckets: latencyBuckets,
		}),
	}
	m.collectors = []prometheus.Collector{
		m.records, m.bytes, m.commits, m.perCommit, m.commitDur, m.syncDur, m.ackDur,
		m.refused, m.streams, m.samples, m.sampleDur, &runCollector{s: s},
	}
	if reg != nil {
		for _, c := range m.collectors {
			reg.MustRegister(c)
		}
	}
	return m
}

// unregister removes the metrics from the registry, so that a later service
// may register on the same one.
func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}

// commit counts one committed transaction.
func (m *metrics) commit(records, bytes int, took, sync time.Duration) {
	m.commits.Inc()
	m.records.Add(float64(records))
	m.bytes.Add(float64(bytes))
	m.perCommit.Observe(float64(records))
	m.commitDur.Observe(took.Seconds())
	m.syncDur.Observe(sync.Seconds())
}

// refuse counts n records refused for err.
func (m *metrics) refuse(err error, n int) {
	if n > 0 {
		m.refused.WithLabelValues(refuseReason(err)).Add(float64(n))
	}
}

// refuseReason names why a record was refused, one short label per error
// kind of errors.go.
func refuseReason(err error) string {
	var (
		inv   *InvalidError
		order *OrderError
		large *TooLargeError
		wire  *wireError
	)
	switch {
	case errors.As(err, &large):
		return "too_large"
	case errors.As(err, &order):
		return "step_order"
	case errors.As(err, &inv), errors.As(err, &wire):
		return "invalid"
	case errors.Is(err, ErrClientSeqOrder):
		return "client_seq_order"
	case errors.Is(err, ErrClientSeqReused):
		return "client_seq_reused"
	case errors.Is(err, ErrClientSeqSkip):
		return "client_seq_skip"
	case errors.Is(err, ErrResendFirst):
		return "resend_first"
	case errors.Is(err, ErrRunFinished):
		return "run_finished"
	case errors.Is(err, ErrRunNotFound):
		return "run_not_found"
	case errors.Is(err, ErrNotAttached):
		return "not_attached"
	case errors.Is(err, ErrShuttingDown):
		return "shutting_down"
	}
	return "commit_failed"
}

// runCollector reports the open runs and their queues at scrape time.
type runCollector struct{ s *Service }

var (
	openRunsDesc = prometheus.NewDesc("runlog_open_runs", "Runs whose log the service holds open.", nil, nil)
	queueDesc    = prometheus.NewDesc("runlog_run_queue_records",
		"Records queued for a run's writer, not yet committed.", []string{"run"}, nil)
	queueBytesDesc = prometheus.NewDesc("runlog_run_queue_bytes",
		"Encoded bytes queued for a run's writer.", []string{"run"}, nil)
)

var (
	lagRecordsDesc = prometheus.NewDesc("runlog_sender_lag_records",
		"Records of open runs an upstream has not acknowledged, summed over the runs.", []string{"upstream"}, nil)
	lagSecondsDesc = prometheus.NewDesc("runlog_sender_lag_seconds",
		"Age of the oldest record of an open run that an upstream has not acknowledged.", []string{"upstream"}, nil)
	failingDesc = prometheus.NewDesc("runlog_sender_failing_runs",
		"Open runs whose last sync to an upstream failed (the error is in runlog status).", []string{"upstream"}, nil)
)

func (c *runCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- openRunsDesc
	ch <- queueDesc
	ch <- queueBytesDesc
	ch <- lagRecordsDesc
	ch <- lagSecondsDesc
	ch <- failingDesc
}

func (c *runCollector) Collect(ch chan<- prometheus.Metric) {
	qs := c.s.queues()
	ch <- prometheus.MustNewConstMetric(openRunsDesc, prometheus.GaugeValue, float64(len(qs)))
	for _, q := range qs {
		ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(q.Records), q.Run)
		ch <- prometheus.MustNewConstMetric(queueBytesDesc, prometheus.GaugeValue, float64(q.Bytes), q.Run)
	}
	type agg struct {
		records uint64
		age     time.Duration
		failing int
	}
	ups := map[string]*agg{}
	now := time.Now()
	for _, r := range c.s.openRuns() {
		ref, err := c.s.use(context.Background(), r.id)
		if err != nil || ref == nil {
			continue
		}
		for _, l := range sendersOf(r, now) {
			a := ups[l.upstream]
			if a == nil {
				a = &agg{}
				ups[l.upstream] = a
			}
			a.records += l.records
			a.age = max(a.age, l.age)
			if l.lastErr != "" {
				a.failing++
			}
		}
		ref.release()
	}
	for u, a := range ups {
		ch <- prometheus.MustNewConstMetric(lagRecordsDesc, prometheus.GaugeValue, float64(a.records), u)
		ch <- prometheus.MustNewConstMetric(lagSecondsDesc, prometheus.GaugeValue, a.age.Seconds(), u)
		ch <- prometheus.MustNewConstMetric(failingDesc, prometheus.GaugeValue, float64(a.failing), u)
	}
}

// RunQueue is an open run's writer queue.
type RunQueue struct {
	Run     string
	Records int
	Bytes   int
}

// queues returns the queue of every open run.
func (s *Service) queues() []RunQueue {
	s.mu.Lock()
	runs := make([]*run, 0, len(s.runs))
	for _, r := range s.runs {
		runs = append(runs, r)
	}
	s.mu.Unlock()
	out := make([]RunQueue, 0, len(runs))
	for _, r := range runs {
		select {
		case <-r.ready:
		default:
			continue // still opening
		}
		if r.openErr != nil {
			continue
		}
		r.mu.Lock()
		q := RunQueue{Run: r.id, Records: r.queued, Bytes: r.queuedBytes}
		r.mu.Unlock()
		out = append(out, q)
	}
	return out
}

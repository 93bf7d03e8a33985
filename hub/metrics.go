package hub

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the hub's Prometheus metrics, registered on Options.Metrics
// when it is set and counted either way.
type metrics struct {
	records   prometheus.Counter
	appends   prometheus.Counter
	appendDur prometheus.Histogram
	refused   *prometheus.CounterVec
	streams   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "runlog_hub_ingested_records_total",
			Help: "Records received by Ingest and stored (resends at or below a run's mark included).",
		}),
		appends: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "runlog_hub_appends_total",
			Help: "Store appends made by Ingest (merged requests of one stream count once).",
		}),
		appendDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "runlog_hub_store_append_duration_seconds",
			Help:    "Time from handing records to the store to their durable commit.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 17),
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runlog_hub_ingest_errors_total",
			Help: "Ingest appends that failed, by gRPC code.",
		}, []string{"code"}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "runlog_hub_ingest_streams",
			Help: "Ingest streams open.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.records, m.appends, m.appendDur, m.refused, m.streams)
	}
	return m
}

func (m *metrics) append(records int, took time.Duration) {
	m.appends.Inc()
	m.records.Add(float64(records))
	m.appendDur.Observe(took.Seconds())
}

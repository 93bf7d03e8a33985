package main

import (
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/runlog/runlog/web"
)

// newRegistry returns a Prometheus registry holding the Go runtime and
// process collectors; the service's and the hub's own metrics join it.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// senderErrors registers runlog_sender_errors_total on reg and returns the
// senders' OnError hook that counts a failed session for its upstream.
func senderErrors(reg prometheus.Registerer) func(upstream string, err error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "runlog_sender_errors_total",
		Help: "Failed sync sessions, by upstream.",
	}, []string{"upstream"})
	reg.MustRegister(c)
	return func(upstream string, _ error) { c.WithLabelValues(upstream).Inc() }
}

// metricsHandler serves reg in the Prometheus exposition formats. With a
// token, a request must carry "Authorization: Bearer TOKEN" (Prometheus'
// scrape config sets it with authorization.credentials_file).
func metricsHandler(reg *prometheus.Registry, token string) http.Handler {
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	if token == "" {
		return h
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="runlog"`)
			http.Error(w, "metrics need the hub's bearer token", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// withMetrics routes /metrics to metrics and everything else to h.
func withMetrics(h, metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics)
	mux.Handle("/", h)
	return mux
}

// startMetrics serves reg at http://addr/metrics. The service's metrics
// name its runs, so an address beyond loopback is warned about.
func startMetrics(log *slog.Logger, addr string, reg *prometheus.Registry) (*web.Serving, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen %q: want HOST:PORT: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		log.Warn("metrics served beyond loopback: anyone who reaches this address sees the run ids", "addr", addr)
	}
	return web.Serve(addr, withMetrics(http.NotFoundHandler(), metricsHandler(reg, "")), web.ServeOptions{Name: "metrics", Logger: log})
}

// newLogger returns the command's logger on w: text (the default) or JSON
// lines with --log-format json.
func newLogger(format string, w io.Writer) (*slog.Logger, error) {
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

package mux_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/runlog/runlog/mux"
	"github.com/runlog/runlog/mux/muxtest"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// scrape fetches url and parses it with the Prometheus text parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return fams
}

// value returns the sum of the family's samples whose labels include want.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no metric %s in the scrape", name)
	}
	sum := 0.0
	for _, m := range f.GetMetric() {
		ok := true
		for k, v := range want {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			ok = ok && found
		}
		if !ok {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// TestMetricsAfterWorkload publishes a known workload from concurrent
// streams and checks the scraped counters against it: every record sent and
// acknowledged is counted as appended, refused records by their reason, and
// group commit shows as more than one record per commit.
func TestMetricsAfterWorkload(t *testing.T) {
	checkLeaks(t)
	const (
		runs    = 8
		batches = 20
		size    = 25
		window  = 8
	)
	reg := prometheus.NewRegistry()
	srv := muxtest.Start(t, mux.Options{Metrics: reg})
	web := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer web.Close()

	var wg sync.WaitGroup
	errs := make(chan error, runs)
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				id := fmt.Sprintf("m-%d", i)
				ir, err := srv.Client.Init(ctxT(t), &runlogv1.InitRequest{RunId: id})
				if err != nil {
					return err
				}
				st, err := srv.Client.Publish(ctxT(t))
				if err != nil {
					return err
				}
				for b := range batches {
					if err := st.Send(&runlogv1.PublishRequest{RunId: id, ClientId: ir.ClientId, Batch: uint64(b),
						Records: muxtest.HistoryBatch(t, uint64(b*size+1), int64(b*size), size, 3)}); err != nil {
						return err
					}
					if b >= window {
						if _, err := st.Recv(); err != nil {
							return err
						}
					}
				}
				for range min(window, batches) {
					if _, err := st.Recv(); err != nil {
						return err
					}
				}
				// One record below the step floor: refused in-band.
				bad := muxtest.Encode(t, muxtest.History(batches*size+1, 0, 1))
				if err := st.Send(&runlogv1.PublishRequest{RunId: id, ClientId: ir.ClientId, Batch: batches, Records: [][]byte{bad}}); err != nil {
					return err
				}
				resp, err := st.Recv()
				if err != nil {
					return err
				}
				if len(resp.Rejections) != 1 {
					return fmt.Errorf("run %s: the record below the floor got %v", id, resp)
				}
				return st.CloseSend()
			}()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	fams := scrape(t, web.URL)
	sent := float64(runs * batches * size)
	if got := value(t, fams, "runlog_records_appended_total", nil); got != sent {
		t.Errorf("runlog_records_appended_total = %v, want the %v records sent", got, sent)
	}
	if got := value(t, fams, "runlog_records_refused_total", map[string]string{"reason": "step_order"}); got != runs {
		t.Errorf("refused step_order = %v, want %d", got, runs)
	}
	if got := value(t, fams, "runlog_open_runs", nil); got != runs {
		t.Errorf("runlog_open_runs = %v, want %d", got, runs)
	}
	if got := value(t, fams, "runlog_run_queue_records", map[string]string{"run": "m-0"}); got != 0 {
		t.Errorf("queue of an idle run = %v records", got)
	}
	commits := value(t, fams, "runlog_commits_total", nil)
	h := fams["runlog_commit_records"].GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != uint64(commits) || h.GetSampleSum() != sent {
		t.Errorf("records per commit: %d commits summing %v records; counters say %v commits, %v records",
			h.GetSampleCount(), h.GetSampleSum(), commits, sent)
	}
	perCommit := sent / commits
	t.Logf("%v records in %v commits: %.1f records per commit", sent, commits, perCommit)
	if perCommit <= 1 {
		t.Errorf("%.2f records per commit under %d concurrent streams: no group commit", perCommit, runs)
	}
	for _, name := range []string{"runlog_commit_duration_seconds", "runlog_commit_sync_duration_seconds"} {
		if got := value(t, fams, name, nil); got != commits {
			t.Errorf("%s has %v observations, want one per commit (%v)", name, got, commits)
		}
	}
	if got, want := value(t, fams, "runlog_ack_duration_seconds", nil), float64(runs*(batches+1)); got != want {
		t.Errorf("runlog_ack_duration_seconds has %v observations, want one per batch (%v)", got, want)
	}
	if got := value(t, fams, "runlog_appended_bytes_total", nil); got < sent*10 {
		t.Errorf("runlog_appended_bytes_total = %v for %v records", got, sent)
	}

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	// Close unregistered the service's metrics: a second one may register.
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
	srv2 := muxtest.Start(t, mux.Options{Metrics: reg})
	if err := srv2.Stop(); err != nil {
		t.Fatal(err)
	}
}

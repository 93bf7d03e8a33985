package mux_test

import (
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/runlog/runlog/mux"
	"github.com/runlog/runlog/mux/muxtest"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// fakeSampler counts its calls and reports one host and one process value.
type fakeSampler struct {
	mu      sync.Mutex
	host    int
	procs   int
	pids    map[int]bool
	sampled chan struct{} // one send per Processes call
}

func (f *fakeSampler) Host(add func(string, float64)) {
	f.mu.Lock()
	f.host++
	n := f.host
	f.mu.Unlock()
	add("cpu.percent", 12.5)
	add("host.sample", float64(n))
}

func (f *fakeSampler) Processes(pids []int, add func(string, float64)) {
	f.mu.Lock()
	f.procs++
	for _, p := range pids {
		f.pids[p] = true
	}
	f.mu.Unlock()
	add("proc.count", float64(len(pids)))
	select {
	case f.sampled <- struct{}{}:
	default:
	}
}

// statsRecords reads a run's system-stats records.
func statsRecords(t *testing.T, srv *muxtest.Server, id string) []*runlogv1.Record {
	t.Helper()
	st, err := srv.Client.Read(ctxT(t), &runlogv1.ReadRequest{RunId: id})
	if err != nil {
		t.Fatal(err)
	}
	var out []*runlogv1.Record
	for {
		resp, err := st.Recv()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range resp.Records {
			if r.GetStats() != nil {
				out = append(out, r)
			}
		}
	}
}

// TestSystemStatsPerRun opens eight runs with the service's interval, one
// with a slower interval of its own and one with stats off, and checks that
// samples arrive at the interval, that the host is sampled once per tick for
// all runs due, and that a finished run gets no more.
func TestSystemStatsPerRun(t *testing.T) {
	checkLeaks(t)
	const every = 100 * time.Millisecond
	f := &fakeSampler{pids: map[int]bool{}, sampled: make(chan struct{}, 1)}
	srv := muxtest.Start(t, mux.Options{Sampler: f, StatsInterval: every})
	pid := int64(os.Getpid())
	start := time.Now()
	clients := map[string]string{}
	for i := range 8 {
		id := fmt.Sprintf("s-%d", i)
		ir, err := srv.Client.Init(ctxT(t), &runlogv1.InitRequest{RunId: id, ClientPid: pid})
		if err != nil {
			t.Fatal(err)
		}
		clients[id] = ir.ClientId
	}
	if _, err := srv.Client.Init(ctxT(t), &runlogv1.InitRequest{RunId: "slow", ClientPid: pid, StatsIntervalMs: 400}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Client.Init(ctxT(t), &runlogv1.InitRequest{RunId: "off", ClientPid: pid, StatsDisabled: true}); err != nil {
		t.Fatal(err)
	}
	// Wait for 8 runs x 6 samples.
	for {
		f.mu.Lock()
		n := f.procs
		f.mu.Unlock()
		if n >= 8*6 {
			break
		}
		select {
		case <-f.sampled:
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d samples after 10s", n)
		}
	}
	elapsed := time.Since(start)
	fin, err := srv.Client.Finish(ctxT(t), &runlogv1.FinishRequest{RunId: "s-0", ClientId: clients["s-0"]})
	if err != nil || !fin.Closed {
		t.Fatalf("finish: %v %v", fin, err)
	}
	root := srv.Root()
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	// Read back through a second service on the same root.
	srv = muxtest.StartAt(t, root, mux.Options{})

	f.mu.Lock()
	host, procs := f.host, f.procs
	f.mu.Unlock()
	if host >= procs/4 {
		t.Errorf("host sampled %d times for %d run samples: not shared across runs", host, procs)
	}
	if !f.pids[os.Getpid()] {
		t.Errorf("Processes never got the client's pid %d: %v", os.Getpid(), f.pids)
	}
	s0 := statsRecords(t, srv, "s-0")
	for i := 1; i < 8; i++ {
		recs := statsRecords(t, srv, fmt.Sprintf("s-%d", i))
		// At the interval: about elapsed/every samples, never many more.
		if max := int(elapsed/every) + 2; len(recs) < 5 || len(recs) > max {
			t.Errorf("run s-%d: %d samples in %v at %v", i, len(recs), elapsed, every)
		}
		// A late tick (a loaded machine) shortens the gap after it, since
		// samples keep to the interval's grid: check the mean gap.
		if n := len(recs); n > 1 {
			mean := time.Duration(recs[n-1].TimeUnixNano-recs[0].TimeUnixNano) / time.Duration(n-1)
			if mean < every*3/4 || mean > 3*every {
				t.Errorf("run s-%d: samples %v apart on average at %v", i, mean, every)
			}
		}
		items := map[string]float64{}
		for _, it := range recs[0].GetStats().GetItems() {
			items[it.Key] = it.GetValue().GetDoubleValue()
		}
		if items["cpu.percent"] != 12.5 || items["proc.count"] != 1 {
			t.Errorf("run s-%d sample: %v", i, items)
		}
		if recs[0].ClientId != "" {
			t.Errorf("sample written as a client's record: %v", recs[0])
		}
	}
	// The finished run's last record is its exit: no sample after it.
	if len(s0) == 0 {
		t.Error("run s-0 has no samples")
	}
	slow := statsRecords(t, srv, "slow")
	if len(slow) == 0 || len(slow) > int(elapsed/(400*time.Millisecond))+2 {
		t.Errorf("run slow (400ms): %d samples in %v", len(slow), elapsed)
	}
	if off := statsRecords(t, srv, "off"); len(off) != 0 {
		t.Errorf("run with stats off has %d samples", len(off))
	}
}

package mux_test

import (
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/runlog/runlog/mux"
	"github.com/runlog/runlog/mux/muxtest"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/sysstats"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSampling8Runs is one tick of the real sampler for eight open
// runs (one host sample, eight process samples and eight records); it
// reports the CPU share of one core that this costs at the default 10s
// interval.
func BenchmarkSampling8Runs(b *testing.B) {
	ss := sysstats.New(sysstats.Options{Disk: b.TempDir()})
	defer ss.Close()
	// Sample every 10ms so that b.N ticks pass quickly; the cost per tick is
	// what the default interval divides.
	srv := muxtest.Start(b, mux.Options{Sampler: ss, StatsInterval: 10 * time.Millisecond, Metrics: nil})
	for i := range 8 {
		if _, err := srv.Client.Init(b.Context(), &runlogv1.InitRequest{RunId: fmt.Sprintf("b-%d", i), ClientPid: int64(os.Getpid())}); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	b.ResetTimer()
	c0, t0 := cpuTime(), time.Now()
	time.Sleep(time.Duration(b.N) * 10 * time.Millisecond)
	cpu, wall := cpuTime()-c0, time.Since(t0)
	ticks := float64(wall) / float64(10*time.Millisecond)
	perTick := time.Duration(float64(cpu) / ticks)
	b.ReportMetric(float64(perTick.Microseconds()), "cpu-us/tick")
	b.ReportMetric(100*perTick.Seconds()/mux.DefaultStatsInterval.Seconds(), "%core@10s")
}

package sysstats

import (
	"bytes"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shirou/gopsutil/v4/mem"
)

func sample(f func(add func(string, float64))) map[string]float64 {
	m := map[string]float64{}
	f(func(k string, v float64) { m[k] = v })
	return m
}

func TestHostValuesArePlausible(t *testing.T) {
	s := New(Options{Disk: t.TempDir(), NoGPU: true})
	defer s.Close()
	// Some work between the readings, so the CPU share has a delta.
	x := 0
	for i := range 20_000_000 {
		x += i
	}
	_ = x
	m := sample(s.Host)
	cores := 0
	for k, v := range m {
		if strings.HasPrefix(k, "cpu.") && strings.HasSuffix(k, ".percent") {
			if v < 0 || v > 100 {
				t.Errorf("%s = %v, want 0..100", k, v)
			}
			if k != "cpu.percent" {
				cores++
			}
		}
	}
	if cores != runtime.NumCPU() {
		t.Errorf("%d per-core values, the machine has %d cores", cores, runtime.NumCPU())
	}
	vm, err := mem.VirtualMemory()
	if err != nil {
		t.Fatal(err)
	}
	if m["memory.total_bytes"] != float64(vm.Total) {
		t.Errorf("memory.total_bytes = %v, want %d", m["memory.total_bytes"], vm.Total)
	}
	for _, k := range []string{"memory.used_bytes", "memory.available_bytes"} {
		if v, ok := m[k]; !ok || v <= 0 || v > float64(vm.Total) {
			t.Errorf("%s = %v (present %v), want within 0..%d", k, v, ok, vm.Total)
		}
	}
	if v := m["disk.root.free_bytes"]; v <= 0 || v > m["disk.root.total_bytes"] {
		t.Errorf("disk.root.free_bytes = %v of %v", v, m["disk.root.total_bytes"])
	}
	for _, k := range []string{"load.1", "swap.used_bytes", "disk.read_bytes_per_s", "network.recv_bytes_per_s"} {
		if v, ok := m[k]; !ok || v < 0 {
			t.Errorf("%s = %v (present %v)", k, v, ok)
		}
	}
	for k := range m {
		if strings.HasPrefix(k, "gpu.") {
			t.Errorf("gpu key %s with NoGPU", k)
		}
	}
}

// vmRSS reads the resident set of pid from /proc, in bytes.
func vmRSS(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb * 1024
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}

func TestProcessRSSMatchesProc(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	// A child of this process stands for a training process (the sampler
	// leaves out the process it runs in).
	child := exec.Command("sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	s := New(Options{NoGPU: true})
	defer s.Close()
	pid := child.Process.Pid
	// A child that has just been started is still loading its program and
	// its resident memory grows: compare a sample with /proc only when
	// /proc read the same before and after it.
	var m map[string]float64
	var want float64
	deadline := time.Now().Add(10 * time.Second)
	for {
		before := vmRSS(t, pid)
		m = sample(func(add func(string, float64)) { s.Processes([]int{pid}, add) })
		want = vmRSS(t, pid)
		if before == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the resident memory of pid %d never held still (%.0f, then %.0f)", pid, before, want)
		}
		// /proc has no event for a process settling; look again shortly.
		time.Sleep(10 * time.Millisecond)
	}
	if got := m["proc.rss_bytes"]; got < want*0.9 || got > want*1.1 {
		t.Errorf("proc.rss_bytes = %.0f, /proc says %.0f", got, want)
	}
	if m["proc.count"] != 1 {
		t.Errorf("proc.count = %v for a process without children", m["proc.count"])
	}
	if v := m["proc.cpu_percent"]; v < 0 || v > 100*float64(runtime.NumCPU()) {
		t.Errorf("proc.cpu_percent = %v", v)
	}
	// The sampling process itself is left out.
	m = sample(func(add func(string, float64)) { s.Processes([]int{os.Getpid()}, add) })
	if m["proc.count"] != 0 {
		t.Errorf("the sampling process was sampled: %v", m)
	}
	// A gone pid adds nothing.
	m = sample(func(add func(string, float64)) { s.Processes([]int{1 << 30}, add) })
	if m["proc.count"] != 0 || m["proc.rss_bytes"] != 0 {
		t.Errorf("a missing process sampled as %v", m)
	}
}

// TestNoGPUSaysSoOnce: without the NVIDIA driver the sampler has no GPU,
// no gpu key, and one log line saying why.
func TestNoGPUSaysSoOnce(t *testing.T) {
	var buf bytes.Buffer
	s := New(Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	defer s.Close()
	if s.HasGPU() {
		t.Skip("this machine has an NVIDIA GPU and driver; see TestNVMLMatchesNvidiaSmi")
	}
	for range 3 {
		for k := range sample(s.Host) {
			if strings.HasPrefix(k, "gpu.") {
				t.Fatalf("gpu key %s without a GPU", k)
			}
		}
	}
	if n := strings.Count(buf.String(), "no NVIDIA GPU"); n != 1 {
		t.Fatalf("%d log lines about the missing GPU, want 1:\n%s", n, buf.String())
	}
}

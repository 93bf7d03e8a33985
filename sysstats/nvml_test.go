//go:build cgo && linux

package sysstats

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
)

// fakeNVML is a device set of n GPUs: device i is i*10 % busy, holds
// (i+1) GiB of 80 GiB, and runs process 1000+i (compute) with 1 GiB.
func fakeNVML(n int) *mock.Interface {
	devs := make([]nvml.Device, n)
	for i := range devs {
		devs[i] = &mock.Device{
			GetNameFunc: func() (string, nvml.Return) { return "Fake H100", nvml.SUCCESS },
			GetUtilizationRatesFunc: func() (nvml.Utilization, nvml.Return) {
				return nvml.Utilization{Gpu: uint32(i * 10)}, nvml.SUCCESS
			},
			GetMemoryInfoFunc: func() (nvml.Memory, nvml.Return) {
				return nvml.Memory{Total: 80 << 30, Used: uint64(i+1) << 30}, nvml.SUCCESS
			},
			GetTemperatureFunc: func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 40 + uint32(i), nvml.SUCCESS },
			GetPowerUsageFunc:  func() (uint32, nvml.Return) { return 250_000, nvml.SUCCESS },
			GetClockInfoFunc: func(c nvml.ClockType) (uint32, nvml.Return) {
				if c == nvml.CLOCK_SM {
					return 1980, nvml.SUCCESS
				}
				return 2619, nvml.SUCCESS
			},
			GetComputeRunningProcessesFunc: func() ([]nvml.ProcessInfo, nvml.Return) {
				return []nvml.ProcessInfo{{Pid: uint32(1000 + i), UsedGpuMemory: 1 << 30}}, nvml.SUCCESS
			},
			GetGraphicsRunningProcessesFunc: func() ([]nvml.ProcessInfo, nvml.Return) {
				return nil, nvml.ERROR_NOT_SUPPORTED
			},
		}
	}
	return &mock.Interface{
		InitFunc:                   func() nvml.Return { return nvml.SUCCESS },
		ShutdownFunc:               func() nvml.Return { return nvml.SUCCESS },
		ErrorStringFunc:            func(r nvml.Return) string { return "fake error " + strconv.Itoa(int(r)) },
		DeviceGetCountFunc:         func() (int, nvml.Return) { return n, nvml.SUCCESS },
		DeviceGetHandleByIndexFunc: func(i int) (nvml.Device, nvml.Return) { return devs[i], nvml.SUCCESS },
	}
}

func TestNVMLFakeDevices(t *testing.T) {
	g, err := newNVML(fakeNVML(2))
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{GPUs: g})
	defer s.Close()
	m := sample(s.Host)
	want := map[string]float64{
		"gpu.0.utilization_percent": 0, "gpu.1.utilization_percent": 10,
		"gpu.0.memory_used_bytes": 1 << 30, "gpu.1.memory_used_bytes": 2 << 30,
		"gpu.1.memory_total_bytes": 80 << 30, "gpu.1.temperature_c": 41, "gpu.0.power_w": 250,
		"gpu.0.sm_clock_mhz": 1980, "gpu.0.memory_clock_mhz": 2619, "gpu.1.processes": 1,
	}
	for k, v := range want {
		if got, ok := m[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	if _, ok := m["gpu.2.utilization_percent"]; ok {
		t.Error("a third GPU in a set of two")
	}
	// Process 1001 is on GPU 1; the run's process part reports its memory.
	p := sample(func(add func(string, float64)) { s.Processes([]int{1001}, add) })
	if _, ok := p["proc.gpu_memory_bytes"]; !ok {
		t.Error("no proc.gpu_memory_bytes where NVML lists processes")
	}

	// A library that loads but sees no device is no GPU.
	none := fakeNVML(0)
	if _, err := newNVML(none); err == nil {
		t.Error("newNVML succeeded with no device")
	}
	failing := fakeNVML(1)
	failing.InitFunc = func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }
	if _, err := newNVML(failing); err == nil || !strings.Contains(err.Error(), "nvml init") {
		t.Errorf("newNVML with a missing library: %v", err)
	}
}

// TestNVMLMatchesNvidiaSmi compares NVML's readings with nvidia-smi on a
// machine with an NVIDIA GPU. Elsewhere it skips and says why, under CI=true
// as well: CI machines have no GPU, and a missing GPU is this feature's
// normal case, not a missing test dependency.
func TestNVMLMatchesNvidiaSmi(t *testing.T) {
	smi, err := exec.LookPath("nvidia-smi")
	if err != nil {
		t.Skip("no nvidia-smi on PATH: no NVIDIA driver on this machine")
	}
	g, err := openNVML()
	if err != nil {
		t.Skipf("NVML not usable here: %v", err)
	}
	defer g.Close()
	gpus, err := g.GPUs()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(smi, "--query-gpu=index,memory.total,name,clocks.max.sm",
		"--format=csv,noheader,nounits").Output()
	if err != nil {
		t.Fatalf("nvidia-smi: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(gpus) {
		t.Fatalf("NVML sees %d GPUs, nvidia-smi %d:\n%s", len(gpus), len(lines), out)
	}
	for i, line := range lines {
		f := strings.Split(line, ", ")
		if len(f) < 3 {
			t.Fatalf("nvidia-smi line %q", line)
		}
		mib, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			t.Fatal(err)
		}
		g := gpus[i]
		if got := float64(g.MemoryTotalBytes) / (1 << 20); got < mib-1 || got > mib+1 {
			t.Errorf("GPU %d: NVML memory total %.0f MiB, nvidia-smi %.0f MiB", i, got, mib)
		}
		if g.Name != f[2] {
			t.Errorf("GPU %d: NVML name %q, nvidia-smi %q", i, g.Name, f[2])
		}
		if g.UtilizationPercent < 0 || g.UtilizationPercent > 100 || g.TemperatureC <= 0 || g.TemperatureC > 120 || g.PowerW <= 0 {
			t.Errorf("GPU %d: implausible %+v", i, g)
		}
		t.Logf("GPU %d %s: %.0f%% busy, %d/%d MiB, %.0f C, %.0f W, SM %.0f MHz", i, g.Name, g.UtilizationPercent,
			g.MemoryUsedBytes>>20, g.MemoryTotalBytes>>20, g.TemperatureC, g.PowerW, g.SMClockMHz)
	}
}

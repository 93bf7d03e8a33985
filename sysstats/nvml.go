//go:build cgo && linux

package sysstats

import (
	"errors"
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// nvmlGPUs reads GPUs through an NVML library: the real one, loaded at run
// time, or a fake device set in tests.
type nvmlGPUs struct {
	lib nvml.Interface
}

var _ GPUSource = (*nvmlGPUs)(nil)

// openNVML loads libnvidia-ml and initialises it; a machine without the
// driver, or without a GPU, answers an error that says which.
func openNVML() (GPUSource, error) {
	return newNVML(nvml.New())
}

// newNVML initialises lib and checks that it sees a device.
func newNVML(lib nvml.Interface) (*nvmlGPUs, error) {
	if ret := lib.Init(); ret != nvml.SUCCESS {
		return nil, fmt.Errorf("nvml init: %s", lib.ErrorString(ret))
	}
	n, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS || n == 0 {
		lib.Shutdown()
		if ret != nvml.SUCCESS {
			return nil, fmt.Errorf("nvml device count: %s", lib.ErrorString(ret))
		}
		return nil, errors.New("nvml sees no device")
	}
	return &nvmlGPUs{lib: lib}, nil
}

// GPUs reads every device. A reading the device does not support is left
// at zero; a device that cannot be opened is left out.
func (g *nvmlGPUs) GPUs() ([]GPU, error) {
	n, ret := g.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("nvml device count: %s", g.lib.ErrorString(ret))
	}
	out := make([]GPU, 0, n)
	for i := range n {
		d, ret := g.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			continue
		}
		s := GPU{Index: i}
		if v, ret := d.GetName(); ret == nvml.SUCCESS {
			s.Name = v
		}
		if u, ret := d.GetUtilizationRates(); ret == nvml.SUCCESS {
			s.UtilizationPercent = float64(u.Gpu)
		}
		if m, ret := d.GetMemoryInfo(); ret == nvml.SUCCESS {
			s.MemoryUsedBytes, s.MemoryTotalBytes = m.Used, m.Total
		}
		if t, ret := d.GetTemperature(nvml.TEMPERATURE_GPU); ret == nvml.SUCCESS {
			s.TemperatureC = float64(t)
		}
		if p, ret := d.GetPowerUsage(); ret == nvml.SUCCESS {
			s.PowerW = float64(p) / 1000 // milliwatts
		}
		if c, ret := d.GetClockInfo(nvml.CLOCK_SM); ret == nvml.SUCCESS {
			s.SMClockMHz = float64(c)
		}
		if c, ret := d.GetClockInfo(nvml.CLOCK_MEM); ret == nvml.SUCCESS {
			s.MemoryClockMHz = float64(c)
		}
		// Compute and graphics processes; a process doing both is listed
		// by both, with the same memory.
		procs := map[uint32]uint64{}
		known := false
		for _, get := range []func() ([]nvml.ProcessInfo, nvml.Return){d.GetComputeRunningProcesses, d.GetGraphicsRunningProcesses} {
			ps, ret := get()
			if ret != nvml.SUCCESS {
				continue
			}
			known = true
			for _, p := range ps {
				procs[p.Pid] = max(procs[p.Pid], p.UsedGpuMemory)
			}
		}
		if known {
			s.Processes = make([]GPUProcess, 0, len(procs))
			for pid, m := range procs {
				s.Processes = append(s.Processes, GPUProcess{PID: int(pid), MemoryUsedBytes: m})
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// Close shuts NVML down.
func (g *nvmlGPUs) Close() error {
	if ret := g.lib.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("nvml shutdown: %s", g.lib.ErrorString(ret))
	}
	return nil
}

package sysstats

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"
	"github.com/shirou/gopsutil/v4/net"
	"github.com/shirou/gopsutil/v4/process"
)

// GPU is one sample of one GPU.
type GPU struct {
	Index              int
	Name               string
	UtilizationPercent float64
	MemoryUsedBytes    uint64
	MemoryTotalBytes   uint64
	TemperatureC       float64
	PowerW             float64
	SMClockMHz         float64
	MemoryClockMHz     float64
	// Processes using the GPU, nil where the driver does not tell.
	Processes []GPUProcess
}

// GPUProcess is a process holding memory on a GPU.
type GPUProcess struct {
	PID             int
	MemoryUsedBytes uint64
}

// GPUSource reads the machine's GPUs.
type GPUSource interface {
	// GPUs returns one sample of every GPU.
	GPUs() ([]GPU, error)
	// Close releases the source.
	Close() error
}

// Options configure New. The zero value samples the host with NVML.
type Options struct {
	// Logger receives the sampler's few messages (no GPU, a failed read,
	// once each). Nil discards them.
	Logger *slog.Logger
	// Disk is a path whose file system's free space is sampled (the root).
	// Empty: none.
	Disk string
	// GPUs replaces NVML. Nil loads NVML.
	GPUs GPUSource
	// NoGPU skips GPUs altogether.
	NoGPU bool
}

// maxProcesses bounds the processes one run's sample walks.
const maxProcesses = 4096

// Sampler samples the host and processes. It is safe for concurrent use;
// samples are serialised.
type Sampler struct {
	log  *slog.Logger
	disk string
	gpus GPUSource

	// mu protects the fields below: the previous readings that rates and
	// percentages are computed against.
	mu       sync.Mutex
	last     time.Time
	cpuTotal cpu.TimesStat
	cpuCores []cpu.TimesStat
	diskIO   map[string]disk.IOCountersStat
	netIO    net.IOCountersStat
	procs    map[int32]*procState
	gpuProcs map[int]uint64 // pid -> GPU memory, from the last Host
	warned   map[string]bool
}

// procState is what a process's CPU share is computed against.
type procState struct {
	p       *process.Process
	created int64   // ms since the epoch: a reused pid is another process
	cpu     float64 // user+system seconds at seen
	seen    time.Time
}

// New returns a sampler and takes its first readings, against which the
// first sample's rates are computed.
func New(opts Options) *Sampler {
	s := &Sampler{
		log:    opts.Logger,
		disk:   opts.Disk,
		procs:  make(map[int32]*procState),
		warned: make(map[string]bool),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	switch {
	case opts.NoGPU:
	case opts.GPUs != nil:
		s.gpus = opts.GPUs
	default:
		g, err := openNVML()
		if err != nil {
			s.log.Info("no NVIDIA GPU: system stats have no gpu.* keys", "why", err)
		} else {
			s.gpus = g
		}
	}
	s.mu.Lock()
	s.readCPULocked()
	s.diskIO = readDiskIO()
	s.netIO = readNet()
	s.last = time.Now()
	s.mu.Unlock()
	return s
}

// HasGPU reports whether the sampler reads GPUs.
func (s *Sampler) HasGPU() bool { return s.gpus != nil }

// Close releases the GPU source.
func (s *Sampler) Close() error {
	if s.gpus == nil {
		return nil
	}
	return s.gpus.Close()
}

// warnOnce logs a failed read the first time it happens.
func (s *Sampler) warnOnceLocked(what string, err error) {
	if !s.warned[what] {
		s.warned[what] = true
		s.log.Warn("system stats: cannot read "+what+"; leaving it out", "err", err)
	}
}

func busy(t cpu.TimesStat) (busy, total float64) {
	total = t.User + t.Nice + t.System + t.Idle + t.Iowait + t.Irq + t.Softirq + t.Steal
	return total - t.Idle - t.Iowait, total
}

func percent(prev, cur cpu.TimesStat) float64 {
	b0, t0 := busy(prev)
	b1, t1 := busy(cur)
	if t1 <= t0 {
		return 0
	}
	return min(100, max(0, 100*(b1-b0)/(t1-t0)))
}

// readCPULocked reads the CPU times; it returns the previous ones.
func (s *Sampler) readCPULocked() (total cpu.TimesStat, cores []cpu.TimesStat, ok bool) {
	total, cores = s.cpuTotal, s.cpuCores
	t, err := cpu.Times(false)
	if err != nil || len(t) == 0 {
		s.warnOnceLocked("cpu times", err)
		return total, cores, false
	}
	c, err := cpu.Times(true)
	if err != nil {
		s.warnOnceLocked("cpu times per core", err)
		return total, cores, false
	}
	s.cpuTotal, s.cpuCores = t[0], c
	return total, cores, true
}

// Host adds one sample of the machine: CPU, load, memory, disk, network and
// GPUs.
func (s *Sampler) Host(add func(key string, v float64)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	dt := now.Sub(s.last).Seconds()
	s.last = now

	if prevTotal, prevCores, ok := s.readCPULocked(); ok {
		add("cpu.percent", percent(prevTotal, s.cpuTotal))
		if len(prevCores) == len(s.cpuCores) {
			for i := range s.cpuCores {
				add(fmt.Sprintf("cpu.%d.percent", i), percent(prevCores[i], s.cpuCores[i]))
			}
		}
	}
	if l, err := load.Avg(); err == nil {
		add("load.1", l.Load1)
		add("load.5", l.Load5)
		add("load.15", l.Load15)
	} else {
		s.warnOnceLocked("load", err)
	}
	if m, err := mem.VirtualMemory(); err == nil {
		add("memory.used_bytes", float64(m.Used))
		add("memory.available_bytes", float64(m.Available))
		add("memory.total_bytes", float64(m.Total))
		add("memory.percent", m.UsedPercent)
	} else {
		s.warnOnceLocked("memory", err)
	}
	if m, err := mem.SwapMemory(); err == nil {
		add("swap.used_bytes", float64(m.Used))
	} else {
		s.warnOnceLocked("swap", err)
	}
	io := readDiskIO()
	if dt > 0 && io != nil && s.diskIO != nil {
		var r, w uint64
		for name, c := range io {
			if p, ok := s.diskIO[name]; ok && c.ReadBytes >= p.ReadBytes && c.WriteBytes >= p.WriteBytes {
				r += c.ReadBytes - p.ReadBytes
				w += c.WriteBytes - p.WriteBytes
			}
		}
		add("disk.read_bytes_per_s", float64(r)/dt)
		add("disk.write_bytes_per_s", float64(w)/dt)
	}
	s.diskIO = io
	if s.disk != "" {
		if u, err := disk.Usage(s.disk); err == nil {
			add("disk.root.free_bytes", float64(u.Free))
			add("disk.root.total_bytes", float64(u.Total))
		} else {
			s.warnOnceLocked("disk usage of "+s.disk, err)
		}
	}
	n := readNet()
	if dt > 0 && n.BytesRecv >= s.netIO.BytesRecv && n.BytesSent >= s.netIO.BytesSent {
		add("network.recv_bytes_per_s", float64(n.BytesRecv-s.netIO.BytesRecv)/dt)
		add("network.sent_bytes_per_s", float64(n.BytesSent-s.netIO.BytesSent)/dt)
	}
	s.netIO = n
	s.sampleGPUsLocked(add)
}

func (s *Sampler) sampleGPUsLocked(add func(key string, v float64)) {
	s.gpuProcs = nil
	if s.gpus == nil {
		return
	}
	gpus, err := s.gpus.GPUs()
	if err != nil {
		s.warnOnceLocked("gpus", err)
		return
	}
	for _, g := range gpus {
		p := fmt.Sprintf("gpu.%d.", g.Index)
		add(p+"utilization_percent", g.UtilizationPercent)
		add(p+"memory_used_bytes", float64(g.MemoryUsedBytes))
		add(p+"memory_total_bytes", float64(g.MemoryTotalBytes))
		add(p+"temperature_c", g.TemperatureC)
		add(p+"power_w", g.PowerW)
		add(p+"sm_clock_mhz", g.SMClockMHz)
		add(p+"memory_clock_mhz", g.MemoryClockMHz)
		if g.Processes != nil {
			add(p+"processes", float64(len(g.Processes)))
			if s.gpuProcs == nil {
				s.gpuProcs = make(map[int]uint64)
			}
			for _, gp := range g.Processes {
				s.gpuProcs[gp.PID] += gp.MemoryUsedBytes
			}
		}
	}
}

// readDiskIO reads the I/O counters of whole disks (partitions would count
// twice, loop and ram devices are not disks); nil when they cannot be read.
func readDiskIO() map[string]disk.IOCountersStat {
	all, err := disk.IOCounters()
	if err != nil {
		return nil
	}
	out := make(map[string]disk.IOCountersStat, len(all))
	for name, c := range all {
		if strings.HasPrefix(name, "loop") || strings.HasPrefix(name, "ram") {
			continue
		}
		if _, err := os.Stat("/sys/block/" + name); err != nil && len(all) > 1 {
			continue // a partition: /sys/block lists whole devices
		}
		out[name] = c
	}
	return out
}

// readNet sums the counters of every interface but loopback.
func readNet() net.IOCountersStat {
	var sum net.IOCountersStat
	all, err := net.IOCounters(true)
	if err != nil {
		return sum
	}
	for _, c := range all {
		if c.Name == "lo" {
			continue
		}
		sum.BytesRecv += c.BytesRecv
		sum.BytesSent += c.BytesSent
	}
	return sum
}

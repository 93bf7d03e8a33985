package sysstats

import (
	"os"
	"time"

	"github.com/shirou/gopsutil/v4/process"
)

// Processes adds one sample of the processes pids and their descendants
// (the sampling process itself left out):
// their CPU share since the previous sample that saw them (since they
// started, the first time), resident memory, count, and GPU memory from
// the last Host sample.
func (s *Sampler) Processes(pids []int, add func(key string, v float64)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	// The service is often a child of the training process (the client
	// started it): its own share is not the training's.
	seen := map[int32]bool{int32(os.Getpid()): true}
	queue := make([]int32, 0, len(pids))
	for _, p := range pids {
		if p > 0 {
			queue = append(queue, int32(p))
		}
	}
	var cpuPct, rss, gpuMem float64
	count := 0
	for len(queue) > 0 && len(seen) < maxProcesses {
		pid := queue[0]
		queue = queue[1:]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		st := s.procLocked(pid)
		if st == nil {
			continue // gone
		}
		count++
		if m, err := st.p.MemoryInfo(); err == nil {
			rss += float64(m.RSS)
		}
		if t, err := st.p.Times(); err == nil {
			c := t.User + t.System
			since := st.seen
			prev := st.cpu
			if since.IsZero() {
				since, prev = time.UnixMilli(st.created), 0
			}
			if dt := now.Sub(since).Seconds(); dt > 0 && c >= prev {
				cpuPct += 100 * (c - prev) / dt
			}
			st.cpu, st.seen = c, now
		}
		gpuMem += float64(s.gpuProcs[int(pid)])
		if kids, err := st.p.Children(); err == nil {
			for _, k := range kids {
				queue = append(queue, k.Pid)
			}
		}
	}
	add("proc.cpu_percent", cpuPct)
	add("proc.rss_bytes", rss)
	add("proc.count", float64(count))
	if s.gpuProcs != nil {
		add("proc.gpu_memory_bytes", gpuMem)
	}
	// Forget processes that no sample of any run saw for a minute.
	for pid, st := range s.procs {
		if !seen[pid] && now.Sub(st.seen) > time.Minute {
			delete(s.procs, pid)
		}
	}
}

// procLocked returns the state of pid, a new one for a new process (or a
// reused pid); nil when it is gone.
func (s *Sampler) procLocked(pid int32) *procState {
	p, err := process.NewProcess(pid)
	if err != nil {
		delete(s.procs, pid)
		return nil
	}
	created, err := p.CreateTime()
	if err != nil {
		delete(s.procs, pid)
		return nil
	}
	if st, ok := s.procs[pid]; ok && st.created == created {
		return st
	}
	st := &procState{p: p, created: created}
	s.procs[pid] = st
	return st
}

package loadgen

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/runlog/runlog/client"
)

// WatchEvery is how often Run looks at the root's service. A service that
// lives less than this may go unseen; its memory still counts through the
// kernel's account of reaped children (childrenPeakRSS).
const WatchEvery = 50 * time.Millisecond

// watch follows the service of a root through restarts: it reads the pid in
// ROOT/service.lock and that process's peak memory every WatchEvery, until
// stop is called. Its methods are safe for concurrent use.
type watch struct {
	root      string
	onRestart func(oldPID, newPID int)
	quit      chan struct{}
	done      chan struct{}
	stopOnce  sync.Once

	mu     sync.Mutex // protects pid and the peaks
	pid    int        // the service the lock file names, 0 before one does
	peakMB float64    // the largest VmHWM read from any of them
	anonMB float64    // the largest RssAnon sampled
	fileMB float64    // the largest RssFile sampled
}

// startWatch samples once and then every WatchEvery in a goroutine that
// stop ends.
func startWatch(root string, onRestart func(oldPID, newPID int)) *watch {
	w := &watch{root: root, onRestart: onRestart, quit: make(chan struct{}), done: make(chan struct{})}
	w.sample()
	go w.run()
	return w
}

// stop ends the watch after one last sample and waits for its goroutine.
// It may be called more than once.
func (w *watch) stop() {
	w.stopOnce.Do(func() {
		close(w.quit)
		<-w.done
	})
}

func (w *watch) run() {
	defer close(w.done)
	t := time.NewTicker(WatchEvery)
	defer t.Stop()
	for {
		select {
		case <-w.quit:
			w.sample()
			return
		case <-t.C:
			w.sample()
		}
	}
}

// sample notes a new service in the lock file and reads the current one's
// peak memory. A killed service's lock file stays behind naming it until
// the next service takes the lock, and a dead or reaped process has no
// memory to read: both are skipped, not errors.
func (w *watch) sample() {
	info, err := client.ReadLock(w.root)
	w.mu.Lock()
	old := w.pid
	if err == nil && info.PID > 0 && info.PID != w.pid {
		w.pid = info.PID
	}
	pid := w.pid
	w.mu.Unlock()
	if old != 0 && pid != old && w.onRestart != nil {
		w.onRestart(old, pid)
	}
	if pid == 0 {
		return
	}
	if m, err := readMemory(pid); err == nil {
		w.mu.Lock()
		w.peakMB = max(w.peakMB, m.peak)
		w.anonMB = max(w.anonMB, m.anon)
		w.fileMB = max(w.fileMB, m.file)
		w.mu.Unlock()
	}
}

// peakKinds returns the largest anonymous and file-backed resident memory
// sampled, MiB.
func (w *watch) peakKinds() (anon, file float64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.anonMB, w.fileMB
}

// current returns the pid of the service the lock file names.
func (w *watch) current() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pid
}

// peak returns the largest peak memory read from any service, MiB.
func (w *watch) peak() float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.peakMB
}

// childrenPeakRSS returns the largest peak resident memory of this process's
// reaped children in MiB (getrusage RUSAGE_CHILDREN; Linux counts kB), 0
// when it cannot tell.
func childrenPeakRSS() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024
}

// childrenCPU returns the user and system CPU seconds of this process's
// reaped children, 0 when it cannot tell.
func childrenCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// memory is a process's resident memory, MiB.
type memory struct {
	peak float64 // VmHWM, the kernel's peak of the total
	anon float64 // RssAnon now
	file float64 // RssFile now
}

// readMemory reads pid's memory from /proc/PID/status.
func readMemory(pid int) (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, fmt.Errorf("read service memory: %w", err)
	}
	var m memory
	found := 0
	for _, line := range strings.Split(string(b), "\n") {
		name, v, ok := strings.Cut(line, ":")
		var dst *float64
		switch name {
		case "VmHWM":
			dst = &m.peak
		case "RssAnon":
			dst = &m.anon
		case "RssFile":
			dst = &m.file
		}
		if !ok || dst == nil {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		if err != nil {
			return memory{}, fmt.Errorf("read service memory: %s %q: %w", name, v, err)
		}
		*dst = kb / 1024
		found++
	}
	if found < 3 {
		return memory{}, fmt.Errorf("read service memory: no VmHWM, RssAnon or RssFile in /proc/%d/status", pid)
	}
	return m, nil
}

// stopService sends SIGTERM and waits for the process to exit, so its logs
// are closed before they are read. The service is usually this process's
// child (the client started it): reap it, or it lingers as a zombie that
// still answers signal 0.
func stopService(pid int, timeout time.Duration) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); errors.Is(err, syscall.ESRCH) {
		return nil // killed, and reaped by the client
	} else if err != nil {
		return fmt.Errorf("stop service pid %d: %w", pid, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		var ws syscall.WaitStatus
		wpid, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		switch {
		case wpid == pid:
			return nil
		case errors.Is(err, syscall.ECHILD):
			// Not our child: it is gone once signal 0 fails.
			if syscall.Kill(pid, 0) != nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stop service pid %d: still running %s after SIGTERM", pid, timeout)
		}
		// No event tells a non-child's exit; poll.
		time.Sleep(10 * time.Millisecond)
	}
}

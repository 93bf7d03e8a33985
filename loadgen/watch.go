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

	mu     sync.Mutex // protects pid and peakMB
	pid    int        // the service the lock file names, 0 before one does
	peakMB float64    // the largest VmHWM read from any of them
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
	if mb, err := peakRSS(pid); err == nil {
		w.mu.Lock()
		w.peakMB = max(w.peakMB, mb)
		w.mu.Unlock()
	}
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

// peakRSS returns the peak resident memory of pid in MiB (VmHWM).
func peakRSS(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read service memory: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				return 0, fmt.Errorf("read service memory: VmHWM %q: %w", v, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("read service memory: no VmHWM in /proc/%d/status", pid)
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

package client

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// procState returns the state letter and parent pid of pid from /proc, ok
// false when there is no such process (it was reaped).
func procState(pid int) (state string, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, false
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 2 {
		return "", 0, false
	}
	ppid, _ = strconv.Atoi(string(f[1]))
	return string(f[0]), ppid, true
}

// killChild SIGKILLs pid, which must be a child of this process.
func killChild(t *testing.T, pid int) {
	t.Helper()
	if state, ppid, ok := procState(pid); !ok || ppid != os.Getpid() || state == "Z" {
		t.Fatalf("service %d: state %q, parent %d; want a live child of this process (%d)", pid, state, ppid, os.Getpid())
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

// awaitReaped waits until the killed child pid is gone from /proc: reaped,
// not left a zombie.
func awaitReaped(t *testing.T, pid int, when string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		state, _, ok := procState(pid)
		if !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: killed service %d is still in /proc (state %s): the client did not reap it", when, pid, state)
		}
		// The client reaps in its own goroutine; /proc has no event to
		// wait on.
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReapsServicesItStarted: in a crash loop the client starts a service
// again and again; each one that dies is reaped, so no zombies pile up
// while the client lives, whether a run is open or not.
func TestReapsServicesItStarted(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	bin := runlogBinary(t)
	root := isolate(t)
	ctx := testCtx(t)
	c, err := Connect(ctx, Options{Root: root, Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := c.Init(ctx, RunOptions{Project: "p"})
	if err != nil {
		t.Fatal(err)
	}
	pids := map[int]bool{}
	step := int64(0)
	for round := range 6 {
		pid := c.ServicePID()
		if pid == 0 || pids[pid] {
			t.Fatalf("round %d: service pid %d (seen: %v)", round, pid, pids)
		}
		pids[pid] = true
		killChild(t, pid)
		// The next flush needs a service: the client starts one.
		if err := r.Log(step, metrics(step)); err != nil {
			t.Fatal(err)
		}
		step++
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		awaitReaped(t, pid, fmt.Sprintf("round %d, after the restart", round))
	}
	if err := r.Finish(ctx, 0); err != nil {
		t.Fatal(err)
	}
	// With no run open the client does not restart a service, and still
	// reaps the one that dies.
	pid := c.ServicePID()
	killChild(t, pid)
	awaitReaped(t, pid, "with no run open")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// A service the client may have started again lives on after Close,
	// as it should; stop it.
	if p := c.ServicePID(); p > 0 && p != pid && alive(p) {
		stopPID(t, p)
	}
}

package client

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	layout "github.com/runlog/runlog/root"
)

// These tests start real `runlog service` processes: the binary at
// $RUNLOG_BIN, else one built from this tree into a temporary directory.

var (
	buildOnce sync.Once
	buildDir  string
	builtBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func runlogBinary(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("RUNLOG_BIN"); b != "" {
		return b
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "runlog-client-test-")
		if buildErr != nil {
			return
		}
		builtBin = filepath.Join(buildDir, "runlog")
		out, err := exec.Command("go", "build", "-o", builtBin, "github.com/runlog/runlog/cmd/runlog").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// isolate keeps the environment from pointing the client elsewhere.
func isolate(t *testing.T) string {
	t.Setenv("RUNLOG_SERVICE", "")
	t.Setenv("RUNLOG_DIR", "")
	dir := t.TempDir()
	// Runs before TempDir's removal (cleanups run last in, first out): a
	// service the test left behind, or one a Close started again, would
	// otherwise write into the directory while it is being removed.
	t.Cleanup(func() { stopServicesOf(t, dir) })
	return dir
}

// stopServicesOf SIGKILLs every process whose command line names root and
// waits until each is gone (reaped when it is a child of this process).
func stopServicesOf(t *testing.T, root string) {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		for _, arg := range bytes.Split(cmdline, []byte{0}) {
			if string(arg) == root {
				pids = append(pids, pid)
				break
			}
		}
	}
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Errorf("process %d of root %s did not exit after SIGKILL", pid, root)
				break
			}
			// A process we are not the parent of signals nothing on exit.
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// stopPID stops a service this process started (SIGTERM, then reap) or,
// failing that, waits for signal 0 to fail.
func stopPID(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var ws syscall.WaitStatus
		wpid, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		if wpid == pid || (errors.Is(err, syscall.ECHILD) && syscall.Kill(pid, 0) != nil) {
			return
		}
		// Nothing signals the exit of a process we may not be the parent of.
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("service pid %d did not stop after SIGTERM", pid)
}

func alive(pid int) bool {
	var ws syscall.WaitStatus
	if wpid, _ := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); wpid == pid {
		return false // it had exited: now reaped
	}
	return syscall.Kill(pid, 0) == nil
}

func TestAutoStartAndRestartAfterKill(t *testing.T) {
	bin := runlogBinary(t)
	root := isolate(t)
	ctx := testCtx(t)
	c, err := Connect(ctx, Options{Root: root, Binary: bin, BatchRecords: 100})
	if err != nil {
		t.Fatal(err)
	}
	pid1 := c.ServicePID()
	if pid1 == 0 || !alive(pid1) {
		t.Fatalf("no service running after Connect (pid %d)", pid1)
	}
	if got := c.Target(); got != "unix://"+SocketPath(root) {
		t.Errorf("target %s, want the root's socket", got)
	}
	r, err := c.Init(ctx, RunOptions{Project: "p"})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	for i := int64(0); i < n; i++ {
		if i == 1000 {
			if err := r.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if i == 1500 {
			// Records are in flight: the service dies without a word.
			syscall.Kill(pid1, syscall.SIGKILL)
		}
		if err := r.Log(i, metrics(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Finish(ctx, 0); err != nil {
		t.Fatal(err)
	}
	pid2 := c.ServicePID()
	if pid2 == pid1 || !alive(pid2) {
		t.Fatalf("service after the kill: pid %d (killed: %d)", pid2, pid1)
	}
	st := c.Stats()
	if st.Reconnects != 1 {
		t.Errorf("stats.Reconnects = %d, want 1", st.Reconnects)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoGoroutines(t)
	stopPID(t, pid2)
	recs := readLog(t, root, r.ID())
	wantSteps(t, historySteps(recs, r.ClientID()), n)
	if last := recs[len(recs)-1]; last.GetExit() == nil || last.GetSynthesized() {
		t.Errorf("last record %v, want the client's exit", recs[len(recs)-1])
	}
	if alive(pid1) {
		t.Errorf("killed service %d still there (not reaped?)", pid1)
	}
}

func TestStartRaceConnectsToTheWinner(t *testing.T) {
	bin := runlogBinary(t)
	root := isolate(t)
	ctx := testCtx(t)
	const clients = 3
	cs := make([]*Client, clients)
	errs := make([]error, clients)
	var wg sync.WaitGroup
	for i := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cs[i], errs[i] = Connect(ctx, Options{Root: root, Binary: bin})
		}()
	}
	wg.Wait()
	pid := 0
	for i, c := range cs {
		if errs[i] != nil {
			t.Fatalf("client %d: %v", i, errs[i])
		}
		defer c.Close()
		r, err := c.Init(ctx, RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Log(0, metrics(0)); err != nil {
			t.Fatal(err)
		}
		if err := r.Finish(ctx, 0); err != nil {
			t.Fatal(err)
		}
		if p := c.ServicePID(); pid == 0 {
			pid = p
		} else if p != pid {
			t.Errorf("client %d talks to pid %d, another to %d", i, p, pid)
		}
	}
	for _, c := range cs {
		c.Close()
	}
	stopPID(t, pid)
	// The losers' processes exited on their own; Close reaped them.
	for _, c := range cs {
		for _, s := range c.started {
			if s.pid != pid && !s.reaped {
				t.Errorf("losing service %d was not reaped", s.pid)
			}
		}
	}
}

func writeScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "runlog")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStartFailureQuotesTheLog(t *testing.T) {
	root := isolate(t)
	bin := writeScript(t, `echo "boom: cannot open root $3" >&2; exit 3`)
	_, err := Connect(testCtx(t), Options{Root: root, Binary: bin})
	var se *StartError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want a *StartError", err)
	}
	logPath := layout.Dir(root).ServiceLog()
	for _, want := range []string{logPath, "exit status 3", "boom: cannot open root " + root} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if se.Log != logPath {
		t.Errorf("StartError.Log = %s", se.Log)
	}
}

func TestStartTimeout(t *testing.T) {
	root := isolate(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	bin := writeScript(t, `echo $$ > `+pidFile+`; echo "starting slowly" >&2; exec sleep 60`)
	_, err := Connect(testCtx(t), Options{Root: root, Binary: bin, StartTimeout: 300 * time.Millisecond})
	var se *StartError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "no port file") || !strings.Contains(err.Error(), "starting slowly") {
		t.Fatalf("err = %v, want a *StartError about the port file quoting the log", err)
	}
	b, _ := os.ReadFile(pidFile)
	var pid int
	fmt.Sscan(string(b), &pid)
	if pid == 0 || syscall.Kill(pid, 0) == nil {
		t.Errorf("the stuck service (pid %d) was left running", pid)
	}
}

func TestNoBinary(t *testing.T) {
	root := isolate(t)
	t.Setenv("RUNLOG_BIN", "")
	t.Setenv("PATH", t.TempDir())
	_, err := Connect(testCtx(t), Options{Root: root})
	if !errors.Is(err, ErrNoBinary) || !strings.Contains(err.Error(), "make build") {
		t.Fatalf("err = %v, want ErrNoBinary saying how to build it", err)
	}
}

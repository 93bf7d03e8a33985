package main

// Helpers for tests that run real runlog processes: the binary under test, a
// process with its stderr kept, a service and a hub on loopback, a command
// run to completion; and runs written into a root the way a service writes
// them, checked against what a hub holds.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/store/storetest"
	"github.com/runlog/runlog/wal"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// bin returns the runlog binary under test: $RUNLOG_BIN (make test sets it)
// or one built once per test binary into a temporary directory.
func bin(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("RUNLOG_BIN"); p != "" {
		return p
	}
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "runlog-test-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "runlog")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// proc is a runlog process started by a test. Its stdout and stderr are
// kept.
type proc struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{}
	err    error // Wait's result, set before done is closed
}

// syncBuffer is a bytes.Buffer safe for the writer goroutine of exec.Cmd and
// the test reading it.
type syncBuffer struct {
	mu  sync.Mutex // protects buf
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// start starts `runlog args...`; cleanup kills it if it still runs, and
// shows its stderr if the test failed.
func start(t testing.TB, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin(t), args...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start runlog %s: %v", strings.Join(args, " "), err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("runlog %s stderr:\n%s", args[0], p.stderr.String())
		}
	})
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits; the process must exit 0.
func (p *proc) stop() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		p.t.Fatalf("process exited with %v\n%s", p.err, p.stderr.String())
	}
}

// wait waits up to 30s for the process to exit and returns its exit code.
func (p *proc) wait() int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Fatalf("process still running after 30s; stderr:\n%s", p.stderr.String())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		p.t.Fatal(p.err)
	}
	return 0
}

// waitFile waits for a file that a process writes atomically (port files)
// and decodes its JSON. The file appears whole; from another process there
// is no event but its existence, so this polls, and gives up when the
// process exits or after 30s.
func waitFile(t testing.TB, p *proc, path string, v any) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(path); err == nil {
			if err := json.Unmarshal(b, v); err != nil {
				t.Fatalf("%s: %v: %q", path, err, b)
			}
			return
		}
		select {
		case <-p.done:
			t.Fatalf("process exited before writing %s: %v\n%s", path, p.err, p.stderr.String())
		case <-deadline:
			t.Fatalf("no %s after 30s\n%s", path, p.stderr.String())
		case <-tick.C:
		}
	}
}

// runCmd runs `runlog args...` to completion and returns its exit code,
// stdout and stderr.
func runCmd(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("runlog %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return code, stdout.String(), stderr.String()
}

// portInfo is the service's port file.
type portInfo struct {
	PID  int    `json:"pid"`
	Unix string `json:"unix"`
	TCP  string `json:"tcp"`
}

// serviceProc is a `runlog service` process, serving once started.
type serviceProc struct {
	*proc
	root     string
	args     []string
	portFile string
	port     portInfo // read from portFile
}

// startService starts `runlog service` on root with extra flags and waits
// until it serves.
func startService(t testing.TB, root string, extra ...string) *serviceProc {
	t.Helper()
	s := &serviceProc{root: root, args: extra}
	s.launch(t)
	return s
}

// launch starts the service (again, after it stopped or was killed) and
// waits for its port file.
func (s *serviceProc) launch(t testing.TB) {
	t.Helper()
	s.portFile = filepath.Join(t.TempDir(), "service.port")
	s.proc = start(t, append([]string{"service", "--root", s.root, "--port-file", s.portFile}, s.args...)...)
	waitFile(t, s.proc, s.portFile, &s.port)
	if s.port.PID != s.cmd.Process.Pid {
		t.Fatalf("port file names pid %d, started %d", s.port.PID, s.cmd.Process.Pid)
	}
}

// dialService connects to a service's unix socket.
func dialService(t testing.TB, socket string) (*grpc.ClientConn, runlogv1.RunlogClient) {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, runlogv1.NewRunlogClient(conn)
}

// hubProc is a `runlog hub` process.
type hubProc struct {
	*proc
	store string
	addr  string
	URL   string
	args  []string
}

// startHub starts a hub on a free loopback port with its store in a
// temporary directory; extra are more flags.
func startHub(t testing.TB, extra ...string) *hubProc {
	t.Helper()
	h := &hubProc{store: filepath.Join(t.TempDir(), "store"), args: extra}
	h.launch(t, "127.0.0.1:0")
	return h
}

func (h *hubProc) launch(t testing.TB, listen string) {
	t.Helper()
	portFile := filepath.Join(t.TempDir(), "hub.port")
	args := append([]string{"hub", "--listen", listen, "--store", h.store, "--port-file", portFile}, h.args...)
	h.proc = start(t, args...)
	var info struct {
		TCP string `json:"tcp"`
	}
	waitFile(t, h.proc, portFile, &info)
	h.addr = info.TCP
	scheme := "grpc"
	for _, a := range h.args {
		if a == "--tls-cert" {
			scheme = "grpcs"
		}
	}
	h.URL = scheme + "://" + h.addr
}

// restart starts the hub again on the same port and store after it stopped
// or was killed.
func (h *hubProc) restart(t testing.TB) {
	t.Helper()
	h.launch(t, h.addr)
}

// client connects to a plaintext hub without a token.
func (h *hubProc) client(t testing.TB) runlogv1.HubClient {
	t.Helper()
	conn, err := grpc.NewClient(h.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return runlogv1.NewHubClient(conn)
}

// hubRun returns the hub's view of a run, nil when it does not hold it.
func hubRun(t testing.TB, c runlogv1.HubClient, id string) *runlogv1.GetRunResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.GetRun(ctx, &runlogv1.GetRunRequest{RunId: id})
	if err != nil {
		return nil
	}
	return r
}

// waitHub polls the hub until cond holds for its view of run id.
func waitHub(t testing.TB, c runlogv1.HubClient, id string, what string, cond func(*runlogv1.GetRunResponse) bool) *runlogv1.GetRunResponse {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := hubRun(t, c, id)
		if r != nil && cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("hub: run %s: %s not reached within 60s (last view: %v)", id, what, r.GetRun())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// makeRun writes a run into root as a service would and returns its log's
// path.
func makeRun(t testing.TB, root, id string, r storetest.Run) string {
	t.Helper()
	path := runPath(root, id)
	l, err := wal.Open(path, wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	storetest.Write(t, l, r)
	return path
}

// logDigest returns the store digest and record count of the log at path.
func logDigest(t testing.TB, path string) ([]byte, uint64) {
	t.Helper()
	l, err := wal.Open(path, wal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d, n, err := storetest.LogDigest(l, l.LastSeq())
	if err != nil {
		t.Fatal(err)
	}
	return d, n
}

// checkHubHolds fails unless the hub holds exactly the records of the log at
// path: the same count and the same digest, which also rules out duplicates.
func checkHubHolds(t testing.TB, c runlogv1.HubClient, id, path string) *runlogv1.GetRunResponse {
	t.Helper()
	d, n := logDigest(t, path)
	r := hubRun(t, c, id)
	if r == nil {
		t.Fatalf("hub does not hold run %s", id)
	}
	if r.GetRun().GetHighWater() != n || r.GetState().GetRecords() != n || !bytes.Equal(r.GetRun().GetDigest(), d) {
		t.Fatalf("run %s: hub holds %d records (state %d, digest match %v), the log %d",
			id, r.GetRun().GetHighWater(), r.GetState().GetRecords(), bytes.Equal(r.GetRun().GetDigest(), d), n)
	}
	return r
}

package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// File names under ROOT, shared with the service.
const (
	socketName = "service.sock"
	lockName   = "service.lock"
	logName    = "service.log"
)

// DefaultRoot returns $RUNLOG_DIR, else ~/.runlog.
func DefaultRoot() (string, error) {
	if d := os.Getenv("RUNLOG_DIR"); d != "" {
		return filepath.Abs(d)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find runlog root: set RUNLOG_DIR: %w", err)
	}
	return filepath.Join(home, ".runlog"), nil
}

// SocketPath returns the service socket of root.
func SocketPath(root string) string { return filepath.Join(root, socketName) }

// Target turns an address as RUNLOG_SERVICE spells it (unix:///abs/path.sock,
// unix:/abs/path, tcp://127.0.0.1:PORT, 127.0.0.1:PORT or a bare absolute
// socket path) into a gRPC target.
func Target(addr string) (string, error) {
	switch {
	case strings.HasPrefix(addr, "unix://"):
		p := strings.TrimPrefix(addr, "unix://")
		if !filepath.IsAbs(p) {
			return "", fmt.Errorf("service address %q: want unix:///absolute/path", addr)
		}
		return "unix://" + p, nil
	case strings.HasPrefix(addr, "unix:"):
		p := strings.TrimPrefix(addr, "unix:")
		if !filepath.IsAbs(p) {
			return "", fmt.Errorf("service address %q: want unix:/absolute/path", addr)
		}
		return "unix://" + p, nil
	case strings.HasPrefix(addr, "/"):
		return "unix://" + addr, nil
	case strings.HasPrefix(addr, "tcp://"):
		addr = strings.TrimPrefix(addr, "tcp://")
	case strings.Contains(addr, "://"):
		return "", fmt.Errorf("service address %q: want unix:///path.sock or tcp://HOST:PORT", addr)
	}
	if _, port, ok := strings.Cut(addr, ":"); !ok || port == "" {
		return "", fmt.Errorf("service address %q: want HOST:PORT", addr)
	}
	return "passthrough:///" + addr, nil
}

// socketTarget returns the target of a unix socket, or "" when no file is
// there: dialling a missing socket only wastes the health timeout.
func socketTarget(path string) string {
	if fi, err := os.Stat(path); err != nil || fi.Mode().Type() != os.ModeSocket {
		return ""
	}
	return "unix://" + path
}

// ServiceInfo is what ROOT/service.lock and a port file say about a running
// service.
type ServiceInfo struct {
	PID  int    `json:"pid"`
	Unix string `json:"unix,omitempty"`
	// Socket is the lock file's name for the unix socket.
	Socket string `json:"socket,omitempty"`
	TCP    string `json:"tcp,omitempty"`
}

// ReadLock reads ROOT/service.lock. The file outlives a killed service, so
// the pid may be gone; check before trusting it.
func ReadLock(root string) (ServiceInfo, error) {
	var info ServiceInfo
	b, err := os.ReadFile(filepath.Join(root, lockName))
	if err != nil {
		return info, fmt.Errorf("read service lock: %w", err)
	}
	if err := json.Unmarshal(bytes.TrimSpace(b), &info); err != nil {
		return info, fmt.Errorf("read service lock %s: %w", filepath.Join(root, lockName), err)
	}
	return info, nil
}

// findBinary resolves the runlog binary that starts a service.
func findBinary(explicit string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	if b := os.Getenv("RUNLOG_BIN"); b != "" {
		return b, nil
	}
	if b, err := exec.LookPath("runlog"); err == nil {
		return b, nil
	}
	if exe, err := os.Executable(); err == nil && filepath.Base(exe) == "runlog" {
		return exe, nil
	}
	return "", fmt.Errorf("%w: build it with \"make build\" in the runlog repository and set RUNLOG_BIN=/path/to/bin/runlog, or put runlog on PATH", ErrNoBinary)
}

// started is a service process this client started. The client reaps it
// with non-blocking waits instead of parking a goroutine in Wait for the
// life of a process that is meant to outlive it.
type started struct {
	pid    int
	reaped bool
	status syscall.WaitStatus
}

// exited reports whether the process has exited, reaping it if so.
func (s *started) exited() bool {
	if s.reaped {
		return true
	}
	var ws syscall.WaitStatus
	pid, err := syscall.Wait4(s.pid, &ws, syscall.WNOHANG, nil)
	if err != nil || pid == s.pid {
		s.reaped, s.status = true, ws
		return true
	}
	return false
}

// startService runs `runlog service` detached and waits for its port file.
// ready reports whether a service (ours or one that won a start race) answers
// on the root's socket; it lets a loser of the race connect to the winner.
func (c *Client) startService(ctx context.Context, ready func(context.Context) bool) (string, error) {
	root := c.root
	logPath := filepath.Join(root, logName)
	fail := func(err error) error {
		return &StartError{Root: root, Log: logPath, Tail: tail(logPath, 10), Err: err}
	}
	bin, err := findBinary(c.opts.Binary)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", fmt.Errorf("start runlog service: %w", err)
	}
	var nonce [6]byte
	rand.Read(nonce[:])
	portFile := filepath.Join(root, "service-"+hex.EncodeToString(nonce[:])+".port")
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return "", fmt.Errorf("start runlog service: %w", err)
	}
	cmd := exec.Command(bin, "service", "--root", root, "--port-file", portFile,
		"--parent-pid", strconv.Itoa(os.Getpid()))
	cmd.Stdout, cmd.Stderr = logFile, logFile // stdin stays /dev/null
	// A session of its own: the terminal's Ctrl-C and the training job's
	// process group signals must not reach the service.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	logFile.Close()
	if err != nil {
		return "", fail(fmt.Errorf("run %s: %w", bin, err))
	}
	proc := &started{pid: cmd.Process.Pid}
	cmd.Process.Release()
	c.started = append(c.started, proc)
	c.log.Info("started runlog service", "pid", proc.pid, "root", root, "binary", bin)

	timeout := c.opts.StartTimeout
	deadline := time.Now().Add(timeout)
	// The port file is the handshake. Nothing signals its arrival portably,
	// so poll it, along with the child's exit, at a short interval.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	waiting := false // our service lost the race; another is starting
	for {
		if info, ok := readPortFile(portFile); ok {
			os.Remove(portFile)
			if info.Unix != "" {
				return "unix://" + info.Unix, nil
			}
			if info.TCP != "" {
				return "passthrough:///" + info.TCP, nil
			}
			return "", fail(fmt.Errorf("port file %s names no address", portFile))
		}
		if proc.exited() {
			// Another starter may have won the race for the lock: its
			// service answers on the socket and ours gave up. The winner
			// names itself in the lock file at once but may need a while
			// (opening its runs) before it answers: wait for it as long as
			// it lives.
			if ready(ctx) {
				return "unix://" + SocketPath(root), nil
			}
			info, err := ReadLock(root)
			if err != nil || info.PID == proc.pid || !processAlive(info.PID) {
				return "", fail(fmt.Errorf("service exited during start (%s)", describeExit(proc.status)))
			}
			if !waiting {
				c.log.Info("another service is starting on the root; waiting for it", "pid", info.PID)
				waiting = true
			}
		}
		if time.Now().After(deadline) {
			if waiting {
				return "", fail(fmt.Errorf("the service that won the start race does not answer after %s (Options.StartTimeout)", timeout))
			}
			syscall.Kill(proc.pid, syscall.SIGKILL)
			if !proc.reaped {
				syscall.Wait4(proc.pid, &proc.status, 0, nil)
				proc.reaped = true
			}
			os.Remove(portFile)
			return "", fail(fmt.Errorf("no port file %s after %s (Options.StartTimeout)", portFile, timeout))
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("start runlog service: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// processAlive reports whether pid names a running process.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func describeExit(ws syscall.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Sprintf("killed by %s", ws.Signal())
	}
	return "unknown status"
}

// readPortFile reads a port file. The service renames it into place, so a
// file that exists is complete.
func readPortFile(path string) (ServiceInfo, bool) {
	var info ServiceInfo
	b, err := os.ReadFile(path)
	if err != nil {
		return info, false
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return info, false
	}
	return info, true
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const max = 8 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		f.Seek(fi.Size()-max, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		lines[i] = "  | " + l
	}
	out := strings.Join(lines, "\n")
	if strings.TrimSpace(strings.ReplaceAll(out, "|", "")) == "" {
		return ""
	}
	return out
}

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
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/runlog/runlog/root"
)

// DefaultRoot returns $RUNLOG_DIR, else ~/.runlog, absolute (root.Resolve).
func DefaultRoot() (string, error) {
	d, err := root.Resolve("")
	return string(d), err
}

// SocketPath returns the service socket of dir.
func SocketPath(dir string) string { return root.Dir(dir).Socket() }

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
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != os.ModeSocket {
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
func ReadLock(dir string) (ServiceInfo, error) {
	var info ServiceInfo
	path := root.Dir(dir).Lock()
	b, err := os.ReadFile(path)
	if err != nil {
		return info, fmt.Errorf("read service lock: %w", err)
	}
	if err := json.Unmarshal(bytes.TrimSpace(b), &info); err != nil {
		return info, fmt.Errorf("read service lock %s: %w", path, err)
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
// life of a process that is meant to outlive it: at every SIGCHLD (see
// reaper) and whenever it looks at the process. Safe for concurrent use.
type started struct {
	pid int

	// mu protects the fields below.
	mu     sync.Mutex
	reaped bool
	status syscall.WaitStatus
}

// exited reports whether the process has exited, reaping it if so.
func (s *started) exited() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
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

// kill ends the process and reaps it.
func (s *started) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reaped {
		return
	}
	syscall.Kill(s.pid, syscall.SIGKILL)
	syscall.Wait4(s.pid, &s.status, 0, nil)
	s.reaped = true
}

// exitStatus describes how the reaped process ended.
func (s *started) exitStatus() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return describeExit(s.status)
}

// reap reaps every started service that has exited and forgets it.
func (c *Client) reap() {
	c.procsMu.Lock()
	defer c.procsMu.Unlock()
	live := c.started[:0]
	for _, s := range c.started {
		if !s.exited() {
			live = append(live, s)
		}
	}
	clear(c.started[len(live):])
	c.started = live
}

// reaper reaps the services this client started as soon as they exit (a
// crash loop would otherwise leave a zombie per service until the client
// exits). It returns when ctx is done.
func (c *Client) reaper(ctx context.Context) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGCHLD)
	defer signal.Stop(sig)
	// A child may have exited before Notify.
	c.reap()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sig:
			c.reap()
		}
	}
}

// startService runs `runlog service` detached and waits for its port file.
// ready reports whether a service (ours or one that won a start race) answers
// on the root's socket; it lets a loser of the race connect to the winner.
func (c *Client) startService(ctx context.Context, ready func(context.Context) bool) (string, error) {
	dir := c.root
	logPath := root.Dir(dir).ServiceLog()
	fail := func(err error) error {
		return &StartError{Root: dir, Log: logPath, Tail: tail(logPath, 10), Err: err}
	}
	bin, err := findBinary(c.opts.Binary)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("start runlog service: %w", err)
	}
	timeout := c.opts.StartTimeout
	deadline := time.Now().Add(timeout)
	// The port file is the handshake. Nothing signals its arrival portably,
	// so poll it, along with the child's exit, at a short interval.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for attempt := 1; ; attempt++ {
		proc, portFile, err := c.spawn(bin)
		if err != nil {
			return "", fail(err)
		}
		waiting := false // our service lost the race; another is starting
		for respawn := false; !respawn; {
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
				// service answers on the socket and ours gave up. The
				// winner names itself in the lock file at once but may need
				// a while (opening its runs) before it answers: wait for it
				// as long as it lives. A holder that is gone was a service
				// on its way out (killed a moment ago): start again.
				if ready(ctx) {
					return "unix://" + SocketPath(dir), nil
				}
				info, err := ReadLock(dir)
				switch {
				case err != nil || info.PID == proc.pid:
					return "", fail(fmt.Errorf("service exited during start (%s)", proc.exitStatus()))
				case c.alive(info.PID):
					if !waiting {
						c.log.Info("another service is starting on the root; waiting for it", "pid", info.PID)
						waiting = true
					}
				case attempt < 3:
					c.log.Info("the root's previous service was still exiting; starting again", "pid", info.PID)
					respawn = true
					continue
				default:
					return "", fail(fmt.Errorf("service exited during start (%s)", proc.exitStatus()))
				}
			}
			if time.Now().After(deadline) {
				if waiting {
					return "", fail(fmt.Errorf("the service that won the start race does not answer after %s (Options.StartTimeout)", timeout))
				}
				proc.kill()
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
}

// spawn starts one service process and returns it with its port file.
func (c *Client) spawn(bin string) (*started, string, error) {
	dir := c.root
	var nonce [6]byte
	rand.Read(nonce[:])
	portFile := root.Dir(dir).PortFile(hex.EncodeToString(nonce[:]))
	logFile, err := os.OpenFile(root.Dir(dir).ServiceLog(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, "", err
	}
	defer logFile.Close()
	args := append([]string{"service", "--root", dir, "--port-file", portFile,
		"--parent-pid", strconv.Itoa(os.Getpid())}, c.opts.ServiceArgs...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile // stdin stays /dev/null
	// A session of its own: the terminal's Ctrl-C and the training job's
	// process group signals must not reach the service.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("run %s: %w", bin, err)
	}
	proc := &started{pid: cmd.Process.Pid}
	cmd.Process.Release()
	c.procsMu.Lock()
	c.started = append(c.started, proc)
	c.procsMu.Unlock()
	c.stats.started.Add(1)
	c.log.Info("started runlog service", "pid", proc.pid, "root", dir, "binary", bin)
	return proc, portFile, nil
}

// alive reports whether pid is a running process. A service this client
// started is checked by reaping it: until reaped, an exited child is a
// zombie that still answers signal 0.
func (c *Client) alive(pid int) bool {
	c.procsMu.Lock()
	var own *started
	for _, s := range c.started {
		if s.pid == pid {
			own = s
		}
	}
	c.procsMu.Unlock()
	if own != nil {
		return !own.exited()
	}
	return processAlive(pid)
}

// processAlive reports whether pid names a running process; a zombie (exited,
// not yet reaped by its parent) is not.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	// /proc/PID/stat: "pid (comm) state ...", comm may hold spaces.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // no /proc: trust the signal
	}
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && b[i+2] == 'Z' {
		return false
	}
	return true
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

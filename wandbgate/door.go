package wandbgate

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/runlog/runlog/client"
	"github.com/runlog/runlog/internal/dirsync"
)

// Service is what the front door needs of the runlog service it stands
// before; *mux.Service is one.
type Service interface {
	// Ready is closed once the service takes clients on UnixPath.
	Ready() <-chan struct{}
	// UnixPath is the service's own unix socket.
	UnixPath() string
	// Run serves until ctx is done, then drains and closes the service.
	Run(ctx context.Context) error
	// Close releases a service that will not Run.
	Close() error
}

// DoorOptions configure RunWithService.
type DoorOptions struct {
	// Root is the service's root: the door listens on SocketPath(Root).
	Root string
	// TCP, when set, is a loopback address (tcp://127.0.0.1:PORT, port 0
	// for a free one) the door listens on too, its port written to
	// PortPath(Root). The wandb protocol has no authentication, so any
	// other host is refused.
	TCP string
	// Logger receives the door's messages. Nil discards them.
	Logger *slog.Logger
}

// RunWithService runs svc with the wandb front door on SocketPath(root)
// and, with opts.TCP, on that loopback address too, until ctx is done or
// the service stops. The sockets listen before the service is ready, so an
// SDK that connects early waits in the backlog; the door closes before the
// service drains, so the runs it abandons are closed while the service
// still takes records. svc is closed when the door cannot open.
func RunWithService(ctx context.Context, svc Service, opts DoorOptions) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lns, err := listenDoor(opts)
	if err != nil {
		svc.Close()
		return err
	}
	path := SocketPath(opts.Root)
	defer os.Remove(path)
	if len(lns) > 1 {
		defer os.Remove(PortPath(opts.Root))
	}
	svcCtx, stopSvc := context.WithCancel(context.Background())
	defer stopSvc()
	gateDone := make(chan struct{})   // closed once the service has stopped
	gateClosed := make(chan struct{}) // closed once the door is shut
	go func() {
		defer close(gateClosed)
		defer func() {
			for _, l := range lns {
				l.Close()
			}
		}()
		select {
		case <-svc.Ready():
		case <-ctx.Done():
			return
		case <-gateDone:
			return
		}
		c, err := client.Connect(ctx, client.Options{Root: opts.Root, Address: "unix://" + svc.UnixPath(), NoStart: true, Logger: log})
		if err != nil {
			log.Error("wandb front door: connect to the service", "err", err)
			return
		}
		defer c.Close()
		gate := New(c, Options{Logger: log})
		served := make(chan error, len(lns))
		for _, l := range lns {
			go func() { served <- gate.Serve(l) }()
		}
		log.Info("wandb front door listening", "unix", path, "tcp", tcpAddrOf(lns))
		select {
		case <-ctx.Done():
		case <-gateDone:
		case err := <-served:
			log.Error("wandb front door stopped", "err", err)
			served <- nil // counted below
		}
		gate.Close()
		for range lns {
			<-served
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			<-gateClosed
			stopSvc()
		case <-gateDone:
		}
	}()
	err = svc.Run(svcCtx)
	close(gateDone)
	<-gateClosed
	return err
}

// listenDoor opens the door's listeners: the unix socket first, then the
// TCP one, whose port file it writes.
func listenDoor(opts DoorOptions) ([]net.Listener, error) {
	path := SocketPath(opts.Root)
	// The root's lock is the caller's service's: a socket file left there
	// is a dead service's.
	os.Remove(path)
	os.Remove(PortPath(opts.Root))
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen for wandb on %s: %w", path, err)
	}
	if opts.TCP == "" {
		return []net.Listener{ln}, nil
	}
	tln, err := listenTCP(opts.TCP)
	if err != nil {
		ln.Close()
		return nil, err
	}
	port := tln.Addr().(*net.TCPAddr).Port
	if err := dirsync.WriteFile(PortPath(opts.Root), []byte(fmt.Sprintf("%d\n", port))); err != nil {
		ln.Close()
		tln.Close()
		return nil, err
	}
	return []net.Listener{ln, tln}, nil
}

// listenTCP listens on a loopback TCP address: the wandb protocol has no
// authentication, so the door never listens beyond this host.
func listenTCP(addr string) (net.Listener, error) {
	hostPort := strings.TrimPrefix(addr, "tcp://")
	host, _, err := net.SplitHostPort(hostPort)
	if err != nil {
		return nil, fmt.Errorf("wandb address %s: want tcp://127.0.0.1:PORT: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("wandb address %s: the wandb protocol has no authentication; listen on a loopback address (tcp://127.0.0.1:PORT)", addr)
	}
	l, err := net.Listen("tcp", hostPort)
	if err != nil {
		return nil, fmt.Errorf("listen for wandb on %s: %w", addr, err)
	}
	return l, nil
}

func tcpAddrOf(lns []net.Listener) string {
	for _, l := range lns {
		if a, ok := l.Addr().(*net.TCPAddr); ok {
			return a.String()
		}
	}
	return ""
}

// ReadPort returns the TCP port that the service of root serves the wandb
// SDK on, from PortPath(root).
func ReadPort(root string) (int, error) {
	b, err := os.ReadFile(PortPath(root))
	if err != nil {
		return 0, fmt.Errorf("wandb port: %w", err)
	}
	port, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("wandb port in %s: %w", PortPath(root), err)
	}
	return port, nil
}

// ServiceEnv is the WANDB_SERVICE value that points the wandb SDK at the
// door of the service of root, whose process is pid: over the unix socket,
// or, when port is not 0, over loopback TCP on that port.
func ServiceEnv(pid int, root string, port int) string {
	if port != 0 {
		return fmt.Sprintf("3-%d-tcp-localhost-%d", pid, port)
	}
	return fmt.Sprintf("3-%d-unix-%s", pid, SocketPath(root))
}

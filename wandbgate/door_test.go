package wandbgate_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runlog/runlog/wandbgate"
)

// idleService is a service the door never gets to: RunWithService must
// refuse to open and close it.
type idleService struct{ closed bool }

func (s *idleService) Ready() <-chan struct{}    { return nil }
func (s *idleService) UnixPath() string          { return "" }
func (s *idleService) Run(context.Context) error { panic("Run of a service whose door did not open") }
func (s *idleService) Close() error              { s.closed = true; return nil }

func TestDoorListensOnlyOnLoopback(t *testing.T) {
	for _, addr := range []string{"tcp://0.0.0.0:0", "tcp://192.0.2.1:0", "tcp://example.com:0", "127.0.0.1"} {
		root := t.TempDir()
		svc := &idleService{}
		err := wandbgate.RunWithService(context.Background(), svc, wandbgate.DoorOptions{Root: root, TCP: addr})
		if err == nil || !svc.closed {
			t.Fatalf("door on %s: %v, service closed %v; want a refusal and a closed service", addr, err, svc.closed)
		}
		if _, err := os.Stat(wandbgate.SocketPath(root)); err == nil {
			t.Fatalf("door on %s: the unix socket stays behind after the refusal", addr)
		}
	}
}

func TestServiceEnvAndPort(t *testing.T) {
	root := t.TempDir()
	if got, want := wandbgate.ServiceEnv(42, root, 0), "3-42-unix-"+filepath.Join(root, "wandb.sock"); got != want {
		t.Fatalf("ServiceEnv unix = %q, want %q", got, want)
	}
	if got, want := wandbgate.ServiceEnv(42, root, 8123), "3-42-tcp-localhost-8123"; got != want {
		t.Fatalf("ServiceEnv tcp = %q, want %q", got, want)
	}
	if _, err := wandbgate.ReadPort(root); err == nil {
		t.Fatal("ReadPort without a port file: want an error")
	}
	if err := os.WriteFile(wandbgate.PortPath(root), []byte("8123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if port, err := wandbgate.ReadPort(root); err != nil || port != 8123 {
		t.Fatalf("ReadPort = %d, %v; want 8123", port, err)
	}
	if err := os.WriteFile(wandbgate.PortPath(root), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := wandbgate.ReadPort(root); err == nil || !strings.Contains(err.Error(), "wandb.port") {
		t.Fatalf("ReadPort of a bad file: %v; want an error naming the file", err)
	}
}

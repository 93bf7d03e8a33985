package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/runlog/runlog/client"
	"github.com/runlog/runlog/mux"
	"github.com/runlog/runlog/wandbgate"
)

// serveWithWandb runs svc with the wandb front door on ROOT/wandb.sock. The
// socket listens before the service is ready, so an SDK that connects early
// waits in the backlog; the door closes before the service drains, so the
// runs it abandons are closed while the service still takes records.
func serveWithWandb(ctx context.Context, svc *mux.Service, root string, log *slog.Logger) error {
	path := wandbgate.SocketPath(root)
	// The root's lock is ours: a socket file left there is a dead
	// service's.
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		svc.Close()
		return fmt.Errorf("listen for wandb on %s: %w", path, err)
	}
	defer os.Remove(path)
	svcCtx, stopSvc := context.WithCancel(context.Background())
	defer stopSvc()
	gateDone := make(chan struct{})   // closed once the service has stopped
	gateClosed := make(chan struct{}) // closed once the door is shut
	go func() {
		defer close(gateClosed)
		defer ln.Close()
		select {
		case <-svc.Ready():
		case <-ctx.Done():
			return
		case <-gateDone:
			return
		}
		c, err := client.Connect(ctx, client.Options{Root: root, Address: "unix://" + svc.UnixPath(), NoStart: true, Logger: log})
		if err != nil {
			log.Error("wandb front door: connect to the service", "err", err)
			return
		}
		defer c.Close()
		gate := wandbgate.New(c, wandbgate.Options{Logger: log})
		served := make(chan error, 1)
		go func() { served <- gate.Serve(ln) }()
		log.Info("wandb front door listening", "unix", path)
		select {
		case <-ctx.Done():
		case <-gateDone:
		case err := <-served:
			log.Error("wandb front door stopped", "err", err)
		}
		gate.Close()
		<-served
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

// wandbToken is the WANDB_SERVICE value that points the wandb SDK at the
// service of root, whose process is pid.
func wandbToken(pid int, root string) string {
	return fmt.Sprintf("3-%d-unix-%s", pid, wandbgate.SocketPath(root))
}

var errNoWandbService = errors.New("no runlog service is running there")

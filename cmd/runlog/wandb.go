package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/runlog/runlog/client"
	"github.com/runlog/runlog/mux"
	"github.com/runlog/runlog/replay"
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

func cmdWandbEnv(args []string) int {
	fs := flag.NewFlagSet("wandb-env", flag.ContinueOnError)
	rootFlag := fs.String("root", "", "runlog root `DIR` (default $RUNLOG_DIR, else ~/.runlog)")
	fs.Usage = func() {
		fmt.Fprint(os.Stderr, "Usage: runlog wandb-env [--root DIR]\n\nPrints the WANDB_SERVICE=... line that points an unchanged wandb script at the\nrunning service of ROOT, for eval or an env file. See also runlog exec.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	root, err := serviceRoot(*rootFlag)
	if err != nil {
		fmt.Fprintf(os.Stderr, "runlog wandb-env: %v\n", err)
		return 2
	}
	info, err := client.ReadLock(root)
	if err != nil || info.PID == 0 {
		fmt.Fprintf(os.Stderr, "runlog wandb-env: %s: %v; start one with runlog service --root %s, or use runlog exec\n", root, errNoWandbService, root)
		return 1
	}
	fmt.Printf("WANDB_SERVICE=%s\n", wandbToken(info.PID, root))
	return 0
}

func cmdExec(args []string) int {
	fs := flag.NewFlagSet("exec", flag.ContinueOnError)
	rootFlag := fs.String("root", "", "runlog root `DIR` (default $RUNLOG_DIR, else ~/.runlog)")
	fs.Usage = func() {
		fmt.Fprint(os.Stderr, "Usage: runlog exec [--root DIR] -- CMD [ARGS...]\n\nRuns CMD with WANDB_SERVICE set so that the wandb SDK in it logs to the runlog\nservice of ROOT, starting the service if none runs. Exits with CMD's status.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	root, err := serviceRoot(*rootFlag)
	if err != nil {
		fmt.Fprintf(os.Stderr, "runlog exec: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// The client starts the service if needed; the service outlives this
	// process only while runs are open.
	c, err := client.Connect(ctx, client.Options{Root: root})
	if err != nil {
		fmt.Fprintf(os.Stderr, "runlog exec: %v\n", err)
		return 1
	}
	defer c.Close()
	root = c.Root()
	cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "WANDB_SERVICE="+wandbToken(c.ServicePID(), root))
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "runlog exec: %v\n", err)
		return 127
	}
	// Signals reach the child through the terminal's process group; the
	// context only keeps this process alive until the child ends.
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "runlog exec: %v\n", err)
		return 1
	}
	return 0
}

func cmdImport(args []string) int {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	rootFlag := fs.String("root", "", "runlog root `DIR` (default $RUNLOG_DIR, else ~/.runlog)")
	fs.Usage = func() {
		fmt.Fprint(os.Stderr, "Usage: runlog import FILE.wandb | offline-run-DIR ... [--root DIR]\n\nWrites each wandb run as a runlog run with the same id, through the service of\nROOT (started if needed). A damaged or truncated file imports its valid prefix,\nthe run closed as crashed, and the command names where it stopped (exit 1).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	paths, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	if len(paths) == 0 {
		fs.Usage()
		return 2
	}
	root, err := serviceRoot(*rootFlag)
	if err != nil {
		fmt.Fprintf(os.Stderr, "runlog import: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	c, err := client.Connect(ctx, client.Options{Root: root})
	if err != nil {
		fmt.Fprintf(os.Stderr, "runlog import: %v\n", err)
		return 1
	}
	defer c.Close()
	code := 0
	for _, p := range paths {
		file, err := wandbgate.WandbFile(p)
		if err != nil {
			fmt.Fprintf(os.Stderr, "runlog import: %v\n", err)
			code = 1
			continue
		}
		start := time.Now()
		res, err := wandbgate.Import(ctx, c, file)
		if err != nil {
			fmt.Fprintf(os.Stderr, "runlog import: %v\n", err)
			code = 1
			continue
		}
		took := time.Since(start)
		fmt.Printf("%s: run %s, %d wandb records -> %d runlog records in %s (%.0f records/s)\n",
			file, res.RunID, res.Records, res.Written, took.Round(time.Millisecond), float64(res.Records)/took.Seconds())
		if res.Stopped != nil {
			fmt.Fprintf(os.Stderr, "runlog import: %s: stopped at byte %d, record %d: %v; the %d records before it were imported\n",
				file, res.Stopped.Offset, res.Stopped.Record, res.Stopped.Err, res.Records)
			code = 1
		}
	}
	return code
}

func cmdExport(args []string) int {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	rootFlag := fs.String("root", "", "runlog root `DIR` (default $RUNLOG_DIR, else ~/.runlog)")
	dir := fs.String("wandb", "", "write a wandb offline run directory into `DIR`")
	fs.Usage = func() {
		fmt.Fprint(os.Stderr, "Usage: runlog export RUN --wandb DIR [--root DIR]\n\nWrites the run as DIR/offline-run-<time>-<id>/run-<id>.wandb, which wandb sync\nuploads.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 || *dir == "" {
		fs.Usage()
		return 2
	}
	root, err := serviceRoot(*rootFlag)
	if err != nil {
		fmt.Fprintf(os.Stderr, "runlog export: %v\n", err)
		return 2
	}
	ctx := context.Background()
	run, err := replayOpen(ctx, root, pos[0], *rootFlag != "")
	if err != nil {
		fmt.Fprintf(os.Stderr, "runlog export: %v\n", err)
		return 1
	}
	defer run.Close()
	e := wandbgate.NewExporter(*dir, run.id)
	if err := replay.Records(run.src, replay.Filter{}, e.Record); err != nil {
		fmt.Fprintf(os.Stderr, "runlog export: %v\n", err)
		e.Close()
		return 1
	}
	if err := e.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "runlog export: %v\n", err)
		return 1
	}
	fmt.Println(filepath.Dir(e.Path()))
	return 0
}

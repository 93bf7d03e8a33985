package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/runlog/runlog/client"
	"github.com/runlog/runlog/local"
	"github.com/runlog/runlog/replay"
	"github.com/runlog/runlog/root"
	"github.com/runlog/runlog/wandbgate"
)

// rootPath is the root a command works in (see root.Resolve), as a path.
func rootPath(flag string) (string, error) {
	d, err := root.Resolve(flag)
	return d.String(), err
}

// serviceLogOf is the log of a service that wandb-env started on dir.
func serviceLogOf(dir string) string { return root.Dir(dir).ServiceLog() }

var errNoWandbService = errors.New("no runlog service is running there")

func cmdWandbEnv(args []string) int {
	fs := flag.NewFlagSet("wandb-env", flag.ContinueOnError)
	rootFlag := fs.String("root", "", "runlog root `DIR` (default $RUNLOG_DIR, else ~/.runlog)")
	tcp := fs.Bool("tcp", false, "point the SDK at the service's loopback TCP listener instead of ROOT/wandb.sock (a service started here listens on a free port)")
	noStart := fs.Bool("no-start", false, "fail instead of starting a service when none runs")
	fs.Usage = func() {
		fmt.Fprint(os.Stderr, "Usage: runlog wandb-env [--root DIR] [--tcp] [--no-start]\n\nPrints the WANDB_SERVICE=... line that points an unchanged wandb script at the\nservice of ROOT, for eval or an env file. When no service runs there it starts\none that keeps running after this command (stop it with SIGTERM; its log is\nROOT/service.log). See also runlog exec.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	root, err := rootPath(*rootFlag)
	if err != nil {
		fmt.Fprintf(os.Stderr, "runlog wandb-env: %v\n", err)
		return 2
	}
	pid, err := runningWandbService(root)
	if err != nil {
		if *noStart {
			fmt.Fprintf(os.Stderr, "runlog wandb-env: %s: %v; start one with: runlog service --root %s", root, err, root)
			if *tcp {
				fmt.Fprint(os.Stderr, " --wandb-listen tcp://127.0.0.1:0")
			}
			fmt.Fprint(os.Stderr, " &\n")
			return 1
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		if pid, err = spawnWandbService(ctx, root, *tcp); err != nil {
			fmt.Fprintf(os.Stderr, "runlog wandb-env: start a service in %s: %v\n", root, err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "runlog wandb-env: started runlog service %d in %s (log: %s)\n", pid, root, serviceLogOf(root))
	}
	if !*tcp {
		fmt.Printf("WANDB_SERVICE=%s\n", wandbgate.ServiceEnv(pid, root, 0))
		return 0
	}
	port, err := wandbgate.ReadPort(root)
	if err != nil {
		fmt.Fprintf(os.Stderr, "runlog wandb-env: the service of %s (pid %d) does not serve wandb on TCP; restart it with --wandb-listen tcp://127.0.0.1:0, or leave out --tcp\n", root, pid)
		return 1
	}
	fmt.Printf("WANDB_SERVICE=%s\n", wandbgate.ServiceEnv(pid, root, port))
	return 0
}

// runningWandbService returns the pid of the service that holds root and
// serves the wandb SDK there.
func runningWandbService(root string) (int, error) {
	info, err := client.ReadLock(root)
	if err != nil || info.PID == 0 || syscall.Kill(info.PID, 0) != nil {
		return 0, errNoWandbService
	}
	if _, err := os.Stat(wandbgate.SocketPath(root)); err != nil {
		return 0, fmt.Errorf("%w (pid %d holds the root but has no %s yet)", errNoWandbService, info.PID, wandbgate.SocketPath(root))
	}
	return info.PID, nil
}

// spawnWandbService starts a service on root that outlives this process,
// in a session of its own, and waits until it serves the wandb SDK. A
// service another command started at the same time wins as well.
func spawnWandbService(ctx context.Context, dir string, tcp bool) (int, error) {
	d := root.Dir(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, err
	}
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	logFile, err := os.OpenFile(d.ServiceLog(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return 0, err
	}
	defer logFile.Close()
	portFile := d.PortFile(fmt.Sprintf("wandb-env-%d", os.Getpid()))
	defer os.Remove(portFile)
	args := []string{"service", "--root", dir, "--port-file", portFile}
	if tcp {
		args = append(args, "--wandb-listen", "tcp://127.0.0.1:0")
	}
	cmd := exec.Command(self, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // ends when the service does
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond) // the port file has no event to await
	defer tick.Stop()
	for {
		if _, err := os.Stat(portFile); err == nil {
			if pid, err := runningWandbService(dir); err == nil {
				return pid, nil
			}
		}
		select {
		case err := <-exited:
			// Another starter won the lock: use its service.
			if pid, rerr := runningWandbService(dir); rerr == nil {
				return pid, nil
			}
			return 0, fmt.Errorf("the service exited (%v); see %s", err, d.ServiceLog())
		case <-deadline.C:
			return 0, fmt.Errorf("no service after 30s; see %s", d.ServiceLog())
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-tick.C:
		}
	}
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
	root, err := rootPath(*rootFlag)
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
	cmd.Env = append(os.Environ(), "WANDB_SERVICE="+wandbgate.ServiceEnv(c.ServicePID(), root, 0))
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
	root, err := rootPath(*rootFlag)
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
	d, err := root.Resolve(*rootFlag)
	if err != nil {
		fmt.Fprintf(os.Stderr, "runlog export: %v\n", err)
		return 2
	}
	ctx := context.Background()
	run, err := local.Open(ctx, local.ParseRef(pos[0], d, *rootFlag != ""), local.Options{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "runlog export: %v\n", err)
		return 1
	}
	defer run.Close()
	e := wandbgate.NewExporter(*dir, run.ID)
	if err := replay.Records(run, replay.Filter{}, e.Record); err != nil {
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

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/runlog/runlog/root"
	"github.com/runlog/runlog/web"
)

// defaultUIAddr is where runlog ui listens without --http: loopback only, a
// fixed port so that a bookmark keeps working.
const defaultUIAddr = "127.0.0.1:7080"

func cmdUI(args []string) int { return runUI(args, os.Stdout, os.Stderr, nil) }

// runUI serves the web UI over a local root until SIGINT or SIGTERM, or
// until stop is closed (tests).
func runUI(args []string, stdout, stderr io.Writer, stop <-chan struct{}) int {
	fs := flag.NewFlagSet("runlog ui", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: runlog ui [--root DIR] [--http HOST:PORT] [--open]

Serves the web UI (runs table, run pages, compare, audit) over the runs of a
local root: offline runs and runs never synced, read from their files, and
the runs the root's service holds, read through the service (live pages
follow them as they are written). Nothing is written to the root.

It listens on %s unless --http says otherwise; the address is
loopback only by default and the UI has no login, so give another host only
on a machine you trust. Port 0 picks a free port. The URL is printed on
stdout once it listens.

Flags:
`, defaultUIAddr)
		fs.PrintDefaults()
	}
	rootFlag := fs.String("root", "", "runlog root (default $RUNLOG_DIR, else ~/.runlog)")
	addr := fs.String("http", defaultUIAddr, "address to serve the UI on, HOST:PORT (port 0 picks a free one)")
	openFlag := fs.Bool("open", false, "open the UI in a browser ($BROWSER, else xdg-open)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "runlog ui: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	dir, err := root.Resolve(*rootFlag)
	if err != nil {
		fmt.Fprintf(stderr, "runlog ui: %v\n", err)
		return 1
	}
	if fi, err := os.Stat(string(dir)); err != nil || !fi.IsDir() {
		fmt.Fprintf(stderr, "runlog ui: no runlog root at %s (pass --root DIR, or set $%s)\n", dir, root.EnvDir)
		return 1
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	h := web.New(web.NewLocalSource(dir, web.LocalOptions{}), web.Options{Title: "root " + dir.String(), Logger: log})
	ui, err := web.Serve(*addr, h, web.ServeOptions{Name: "web ui", Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "runlog ui: %v\n", err)
		if *addr == defaultUIAddr {
			fmt.Fprintf(stderr, "runlog ui: another program (another runlog ui?) may use the port: pass --http 127.0.0.1:0 for a free one\n")
		}
		return 1
	}
	defer ui.Stop()
	fmt.Fprintf(stdout, "runlog ui: serving %s at %s (Ctrl-C to stop)\n", dir, ui.URL())
	if *openFlag {
		if err := openBrowser(ui.URL()); err != nil {
			fmt.Fprintf(stderr, "runlog ui: cannot open a browser: %v; open %s yourself\n", err, ui.URL())
		}
	}
	select {
	case <-ctx.Done():
	case <-stop:
	}
	return 0
}

// openBrowser starts the user's browser on url: the first command of
// $BROWSER (a list separated by ':', as xdg-utils reads it), else xdg-open
// (open on macOS). The browser is the user's program, not ours: it is not
// waited for, and it outlives runlog ui. Its exit is collected by a
// goroutine that ends with it.
func openBrowser(url string) error {
	var argv []string
	if b := os.Getenv("BROWSER"); b != "" {
		first := strings.Split(b, ":")[0]
		if strings.Contains(first, "%s") {
			argv = strings.Fields(strings.ReplaceAll(first, "%s", url))
		} else {
			argv = append(strings.Fields(first), url)
		}
	} else {
		opener := "xdg-open"
		if runtime.GOOS == "darwin" {
			opener = "open"
		}
		if _, err := exec.LookPath(opener); err != nil {
			return fmt.Errorf("$BROWSER is not set and %s is not installed", opener)
		}
		argv = []string{opener, url}
	}
	if len(argv) == 0 {
		return errors.New("$BROWSER names no command")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C stops runlog ui, not the browser
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", argv[0], err)
	}
	go cmd.Wait()
	return nil
}

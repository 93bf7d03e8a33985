package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/runlog/runlog/mux"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/root"
	"github.com/runlog/runlog/sysstats"
	"github.com/runlog/runlog/wandbgate"
)

const serviceUsage = `Usage: runlog service [flags]

Runs the local service that training processes log to. It listens on the unix
socket ROOT/service.sock (and on --listen, if given), and to the wandb SDK on
ROOT/wandb.sock (see runlog wandb-env), writes every record to
ROOT/runs/<run-id>/wal.bolt and acknowledges it once it is on disk. One service
runs per ROOT. It logs to stderr.

SIGTERM or SIGINT drains it: queued records are committed and acknowledged,
logs closed, socket and lock removed, exit status 0.

Flags:
`

// serviceConfig is what the flags of `runlog service` set.
type serviceConfig struct {
	root           string
	listen         string
	wandbListen    string
	portFile       string
	cpuProfile     string
	parentPID      int
	maxRecordBytes int
	crashGrace     time.Duration
	// Upstream sync: accepted here, turned into followers by
	// serviceFollowers.
	offline           bool
	upstreams         []string
	upstreamTokenFile string
	// Observability.
	metricsListen string
	logFormat     string
	statsInterval time.Duration
}

type stringList []string

func (l *stringList) String() string     { return fmt.Sprint(*l) }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func parseServiceFlags(args []string, stderr io.Writer) (*serviceConfig, error) {
	c := &serviceConfig{}
	fs := flag.NewFlagSet("service", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, serviceUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.root, "root", "", "runlog root `DIR` (default $RUNLOG_DIR, else ~/.runlog); created with mode 0700")
	fs.StringVar(&c.listen, "listen", "", "also listen on TCP, `tcp://HOST:PORT`; port 0 picks a free port (the port file tells which)")
	fs.StringVar(&c.wandbListen, "wandb-listen", "", "also serve the wandb SDK on loopback TCP, `tcp://127.0.0.1:PORT`; port 0 picks a free port (ROOT/wandb.port tells which; runlog wandb-env --tcp)")
	fs.StringVar(&c.cpuProfile, "cpu-profile", "", "write a CPU profile of the service to `FILE` when it stops (for go tool pprof)")
	fs.StringVar(&c.portFile, "port-file", "", "once listening, write `FILE` atomically: {\"pid\":..,\"unix\":..,\"tcp\":..}")
	fs.IntVar(&c.parentPID, "parent-pid", 0, "exit once process `PID` is gone and no run is open")
	fs.IntVar(&c.maxRecordBytes, "max-record-bytes", mux.DefaultMaxRecordBytes, "refuse encoded records larger than `N` bytes")
	fs.DurationVar(&c.crashGrace, "crash-grace", mux.DefaultCrashGrace,
		"how long a run whose clients are gone waits for one to re-attach before it is closed as crashed")
	fs.BoolVar(&c.offline, "offline", false, "never sync runs upstream (every run is treated as offline)")
	fs.Var((*stringList)(&c.upstreams), "upstream", "sync runs to the hub at `URL` (grpc://HOST:PORT or grpcs://HOST:PORT); repeatable")
	fs.StringVar(&c.upstreamTokenFile, "upstream-token-file", "", "bearer token for the upstreams, read from `FILE`")
	fs.StringVar(&c.metricsListen, "metrics-listen", "", "serve Prometheus metrics at http://`HOST:PORT`/metrics (no token: keep it on loopback)")
	fs.DurationVar(&c.statsInterval, "stats-interval", mux.DefaultStatsInterval,
		"write a system-stats record (CPU, memory, disk, network, GPUs, the run's processes) into each open run this often; 0 turns it off")
	fs.StringVar(&c.logFormat, "log-format", "text", "log `FORMAT` on stderr: text or json")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.maxRecordBytes <= 0 {
		return nil, fmt.Errorf("--max-record-bytes %d: must be positive", c.maxRecordBytes)
	}
	if c.statsInterval < 0 {
		return nil, fmt.Errorf("--stats-interval %s: must not be negative", c.statsInterval)
	}
	if c.crashGrace <= 0 {
		return nil, fmt.Errorf("--crash-grace %s: must be positive", c.crashGrace)
	}
	if c.offline && len(c.upstreams) > 0 {
		return nil, errors.New("--offline and --upstream exclude each other")
	}
	dir, err := root.Resolve(c.root)
	if err != nil {
		return nil, err
	}
	c.root = string(dir)
	return c, nil
}

func cmdService(args []string) int {
	c, err := parseServiceFlags(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "runlog service: %v\n", err)
		return 2
	}
	log, err := newLogger(c.logFormat, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "runlog service: %v\n", err)
		return 2
	}
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "runlog service: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "runlog service: cpu profile: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := runService(ctx, c, log); err != nil {
		fmt.Fprintf(os.Stderr, "runlog service: %v\n", err)
		return 1
	}
	return 0
}

// runService runs the service until ctx is done or its parent is gone.
func runService(ctx context.Context, c *serviceConfig, log *slog.Logger) error {
	// The backlog lives on disk, so the heap is small; a soft limit keeps
	// the garbage collector from letting it grow past what it needs. An
	// explicit GOMEMLIMIT wins.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(64 << 20)
	}
	// Almost all of the heap is batches on their way to a log, garbage
	// once committed: collecting when the heap has grown by three quarters
	// of the live heap rather than doubled keeps resident memory near what
	// is in flight for about a tenth more CPU. An explicit GOGC wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(75)
	}
	reg := newRegistry()
	if c.metricsListen != "" {
		ms, err := startMetrics(log, c.metricsListen, reg)
		if err != nil {
			return err
		}
		defer ms.Stop()
	}
	followers, closeUpstreams, err := serviceFollowers(c, log, senderErrors(reg))
	if err != nil {
		return err
	}
	defer closeUpstreams()
	var sampler mux.Sampler
	if c.statsInterval > 0 {
		ss := sysstats.New(sysstats.Options{Logger: log, Disk: c.root})
		defer ss.Close()
		sampler = ss
	}
	svc, err := mux.Open(c.root, mux.Options{
		Metrics:        reg,
		Sampler:        sampler,
		StatsInterval:  c.statsInterval,
		Logger:         log,
		Listen:         c.listen,
		PortFile:       c.portFile,
		ParentPID:      c.parentPID,
		MaxRecordBytes: c.maxRecordBytes,
		CrashGrace:     c.crashGrace,
		Followers:      followers,
		DefaultMode:    defaultMode(c.offline),
	})
	if err != nil {
		return err
	}
	return wandbgate.RunWithService(ctx, svc, wandbgate.DoorOptions{Root: c.root, TCP: c.wandbListen, Logger: log})
}

// The wandb front door stands before the service.
var _ wandbgate.Service = (*mux.Service)(nil)

// serviceFollowers builds the followers that sync runs upstream from
// --offline, --upstream and --upstream-token-file. This is the one place
// where senders are wired into the service.
// The returned function closes the upstream connections once the service
// has stopped.
func serviceFollowers(c *serviceConfig, log *slog.Logger, onError func(string, error)) ([]mux.Follower, func(), error) {
	return upstreamFollowers(c.offline, c.upstreams, c.upstreamTokenFile, log, onError)
}

// defaultMode is the sync mode new runs get when their client does not pick
// one: offline under --offline, so they stay local until runlog sync.
func defaultMode(offline bool) runlogv1.SyncMode {
	if offline {
		return runlogv1.SyncMode_SYNC_MODE_OFFLINE
	}
	return runlogv1.SyncMode_SYNC_MODE_UNSPECIFIED
}

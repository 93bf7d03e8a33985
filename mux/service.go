package mux

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/runlog/runlog/internal/dirsync"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/root"
	"github.com/runlog/runlog/wal"
)

// Defaults of Options.
const (
	DefaultMaxRecordBytes = 4 << 20
	DefaultCrashGrace     = 60 * time.Second

	defaultPollInterval     = time.Second
	defaultShutdownTimeout  = 5 * time.Second
	defaultMaxCommitRecords = 4096
	defaultMaxCommitBytes   = 2 << 20
	defaultMaxQueueRecords  = 8192
	defaultMaxQueueBytes    = 4 << 20
	// maxOutstanding bounds the batches of one Publish stream that are
	// queued or being committed; the stream stops reading beyond it.
	maxOutstanding = 64
	// maxMsgBytes is the least batch limit (see batchLimit): well above the
	// record limit, so an oversize record gets an in-band rejection, not a
	// broken stream.
	maxMsgBytes = 64 << 20
)

// Options configure Open. The zero value is a working default.
type Options struct {
	// Logger receives the service's log. Nil discards it.
	Logger *slog.Logger
	// Listen adds a TCP listener, "tcp://HOST:PORT"; port 0 picks a free
	// port. Empty: the unix socket only.
	Listen string
	// PortFile, when set, is written atomically once the service listens:
	// {"pid":..,"unix":..,"tcp":..}.
	PortFile string
	// ParentPID, when set, makes Run return once that process is gone and
	// no run is open.
	ParentPID int
	// MaxRecordBytes is the limit on one encoded record. Zero means
	// DefaultMaxRecordBytes.
	MaxRecordBytes int
	// CrashGrace is how long a run whose clients are all gone waits for one
	// to re-attach before it gets a synthesized crashed exit. Zero means
	// DefaultCrashGrace.
	CrashGrace time.Duration
	// DefaultMode is the sync mode recorded for a new run whose Init does
	// not choose one. A service started with --offline sets it to offline,
	// so its runs stay local even under a later service with an upstream
	// (they are synced with runlog sync). Unspecified records nothing:
	// whichever upstreams the service has decide.
	DefaultMode runlogv1.SyncMode
	// Followers tail every run the service opens; see Follower.
	Followers []Follower
	// Metrics, when set, gets the service's Prometheus metrics (commits,
	// records per commit, fsync and ack latency, queues, refusals, open
	// runs and streams); see metrics.go. Close unregisters them.
	Metrics prometheus.Registerer
	// Sampler, when set, writes a system-stats record into every open run
	// with attached clients every StatsInterval (zero: 10s), or at the
	// interval its Init asks for; Init may also turn it off for a run.
	// Nil: no system stats.
	Sampler       Sampler
	StatsInterval time.Duration

	// PollInterval is how often client processes and the parent are
	// checked. Zero means one second.
	PollInterval time.Duration
	// ShutdownTimeout bounds how long shutdown waits for RPC streams to end
	// before it closes them. Zero means five seconds.
	ShutdownTimeout time.Duration
	// ProcessAlive reports whether a process is running. Nil checks with
	// signal 0 and /proc on this machine.
	ProcessAlive func(pid int) bool
	// WAL is passed to wal.Open for every run (its Now and Entropy are test
	// seams); MustExist and ReadOnly are set by the service.
	WAL wal.Options
	// Group commit bounds: one commit takes at most MaxCommitRecords records
	// or MaxCommitBytes bytes (at least one batch); a run queues at most
	// MaxQueueRecords records or MaxQueueBytes bytes before publishers
	// wait. Zero means 4096, 2 MiB, 8192 and 4 MiB. Halving all four (and
	// the client's batch) keeps 8 runs at full speed near 30 MiB of
	// anonymous memory instead of near 48, for 10-20% less throughput:
	// each commit is an fsync.
	MaxCommitRecords int
	MaxCommitBytes   int
	MaxQueueRecords  int
	MaxQueueBytes    int
}

var _ runlogv1.RunlogServer = (*Service)(nil)

// Service is the runlog service over one root directory. It is safe for
// concurrent use; its methods are the gRPC handlers.
type Service struct {
	runlogv1.UnimplementedRunlogServer

	root      string
	dir       root.Dir // the same, for the layout
	opts      Options
	log       *slog.Logger
	schema    *msgSchema
	maxRecord int
	grace     time.Duration
	poll      time.Duration
	alive     func(pid int) bool
	host      string

	lock *rootLock
	// runsFile is ROOT/runs, open for the service's life so that ListRuns
	// can list the runs without a new file descriptor (and describe each
	// one, an error included, when the process has none left).
	runsFile *os.File
	// runsMu serialises reading runsFile, whose offset is shared.
	runsMu   sync.Mutex
	unixPath string
	unixLn   net.Listener
	tcpLn    net.Listener
	grpc     *grpc.Server
	health   *health.Server
	parent   proc

	// mu protects runs and draining.
	mu       sync.Mutex
	runs     map[string]*run
	draining bool

	drainCtx     context.Context // cancelled when shutdown begins
	drain        context.CancelFunc
	drained      chan struct{} // closed once every writer answered its queue
	followCtx    context.Context
	cancelFollow context.CancelFunc
	wg           sync.WaitGroup // run lifecycles, stream receivers, the watcher
	stopWatch    chan struct{}
	statsWake    chan struct{} // one slot: a run's sampling changed
	parentGone   chan struct{} // closed when the parent is gone and no run is open
	ready        chan struct{} // closed once serving and the port file is written

	closeOnce sync.Once
	closeErr  error

	started time.Time
	stats   commitStats // written by the runs' writers
	metrics *metrics
}

// Open takes the root (creating it with mode 0700), locks it against a
// second service, opens every run that has no exit record (and finished runs
// a follower wants) and listens. Serve with Run; Close releases everything
// if Run is not called.
func Open(dir string, opts Options) (*Service, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open root %s: %w", dir, err)
	}
	s := &Service{
		root:       abs,
		dir:        root.Dir(abs),
		started:    time.Now(),
		opts:       opts,
		log:        opts.Logger,
		schema:     newSchema(),
		maxRecord:  opts.MaxRecordBytes,
		grace:      opts.CrashGrace,
		poll:       opts.PollInterval,
		alive:      opts.ProcessAlive,
		runs:       make(map[string]*run),
		drained:    make(chan struct{}),
		stopWatch:  make(chan struct{}),
		statsWake:  make(chan struct{}, 1),
		parentGone: make(chan struct{}),
		ready:      make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.maxRecord <= 0 {
		s.maxRecord = DefaultMaxRecordBytes
	}
	if s.grace <= 0 {
		s.grace = DefaultCrashGrace
	}
	if s.poll <= 0 {
		s.poll = defaultPollInterval
	}
	if s.alive == nil {
		s.alive = processAlive
	}
	if s.opts.StatsInterval <= 0 {
		s.opts.StatsInterval = DefaultStatsInterval
	}
	if s.opts.ShutdownTimeout <= 0 {
		s.opts.ShutdownTimeout = defaultShutdownTimeout
	}
	if s.opts.MaxCommitRecords <= 0 {
		s.opts.MaxCommitRecords = defaultMaxCommitRecords
	}
	if s.opts.MaxCommitBytes <= 0 {
		s.opts.MaxCommitBytes = defaultMaxCommitBytes
	}
	if s.opts.MaxQueueRecords <= 0 {
		s.opts.MaxQueueRecords = defaultMaxQueueRecords
	}
	if s.opts.MaxQueueBytes <= 0 {
		s.opts.MaxQueueBytes = defaultMaxQueueBytes
	}
	s.host, _ = os.Hostname()
	if s.host == "" {
		s.host = "localhost"
	}
	s.metrics = newMetrics(s, opts.Metrics)
	s.followCtx, s.cancelFollow = context.WithCancel(context.Background())
	s.drainCtx, s.drain = context.WithCancel(context.Background())

	if err := makeRoot(s.dir, s.log); err != nil {
		return nil, err
	}
	s.unixPath = s.dir.Socket()
	if len(s.unixPath) >= maxSocketPath {
		return nil, fmt.Errorf("open root %s: socket path %s is %d bytes, the limit is %d; use a shorter --root",
			abs, s.unixPath, len(s.unixPath), maxSocketPath-1)
	}
	s.lock, err = lockRoot(s.dir)
	if err != nil {
		return nil, err
	}
	if opts.ParentPID > 0 {
		s.parent = newProc(opts.ParentPID)
	}
	ok := false
	defer func() {
		if !ok {
			s.Close() // stops the runs recover opened, releases the root
		}
	}()
	if _, err := dirsync.MkdirAll(s.dir.Runs(), 0o700); err != nil {
		return nil, fmt.Errorf("open root %s: %w", abs, err)
	}
	if s.runsFile, err = os.Open(s.dir.Runs()); err != nil {
		return nil, fmt.Errorf("open root %s: %w", abs, err)
	}
	if err := s.recover(); err != nil {
		return nil, err
	}
	if err := s.listen(); err != nil {
		return nil, err
	}

	// The lock file names this service from now on: a second service on
	// the root reports its pid and addresses.
	if err := s.lock.write(lockInfo{PID: os.Getpid(), Socket: s.unixPath, TCP: s.TCPAddr()}); err != nil {
		return nil, err
	}

	s.grpc = grpc.NewServer(
		// Stop returns only after every handler did, so nothing of the
		// service runs after Close.
		grpc.WaitForHandlers(true),
		grpc.MaxRecvMsgSize(s.transportLimit()),
		grpc.MaxSendMsgSize(s.transportLimit()),
		grpc.ChainUnaryInterceptor(s.checkUnary),
		// Local clients may keep a connection idle for a long time; they
		// may ping every 10s without being disconnected for it.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             10 * time.Second,
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Minute, Timeout: 20 * time.Second}),
		// Fixed flow-control windows: over a local socket a larger one
		// buys nothing, and the adaptive one grows each stream's
		// buffers to megabytes.
		grpc.InitialWindowSize(256<<10),
		grpc.InitialConnWindowSize(1<<20),
	)
	runlogv1.RegisterRunlogServer(s.grpc, s)
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, s.health)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	s.health.SetServingStatus(runlogv1.Runlog_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	ok = true
	return s, nil
}

// Root returns the absolute root directory.
func (s *Service) Root() string { return s.root }

// UnixPath returns the unix socket the service listens on.
func (s *Service) UnixPath() string { return s.unixPath }

// TCPAddr returns the TCP address the service listens on, "" without one.
func (s *Service) TCPAddr() string {
	if s.tcpLn == nil {
		return ""
	}
	return s.tcpLn.Addr().String()
}

func (s *Service) listen() error {
	// The root lock is held, so a socket left here belongs to a service that
	// is gone. A socket of another user, or a link, in its place means
	// someone else could write the root: refuse rather than guess.
	if err := root.CheckSocket(s.unixPath); err != nil {
		return err
	}
	if err := os.Remove(s.unixPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket %s: %w", s.unixPath, err)
	}
	ln, err := net.Listen("unix", s.unixPath)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.unixPath, err)
	}
	s.unixLn = ln
	if err := os.Chmod(s.unixPath, 0o600); err != nil {
		return fmt.Errorf("listen on %s: %w", s.unixPath, err)
	}
	if s.opts.Listen == "" {
		return nil
	}
	addr, ok := strings.CutPrefix(s.opts.Listen, "tcp://")
	if !ok {
		return fmt.Errorf("listen %q: want tcp://HOST:PORT", s.opts.Listen)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen %q: %w", s.opts.Listen, err)
	}
	tcp, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.opts.Listen, err)
	}
	s.tcpLn = tcp
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		s.log.Warn("listening beyond loopback: anyone who reaches this address can log to and read every run",
			"addr", tcp.Addr().String())
	}
	return nil
}

// Run serves until ctx is done, the parent process is gone (with no run
// open) or a listener fails, then shuts down: it stops taking work, commits
// and acknowledges what is queued, stops followers, closes every log,
// removes the socket and port file and releases the root. It returns nil
// after a clean shutdown.
func (s *Service) Run(ctx context.Context) error {
	info := lockInfo{PID: os.Getpid(), Socket: s.unixPath, TCP: s.TCPAddr()}
	lns := []net.Listener{s.unixLn}
	if s.tcpLn != nil {
		lns = append(lns, s.tcpLn)
	}
	serveErr := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { serveErr <- s.grpc.Serve(ln) }()
	}
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.health.SetServingStatus(runlogv1.Runlog_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	s.wg.Add(1)
	go s.watch()
	if s.opts.Sampler != nil {
		s.wg.Add(1)
		go s.sampleLoop()
	}

	// The port file is the handshake a starting client waits for, so it is
	// written only once a health check would already answer SERVING.
	var err error
	if s.opts.PortFile != "" {
		pf := portFile{PID: info.PID, Unix: s.unixPath, TCP: info.TCP}
		err = writePortFile(s.opts.PortFile, pf)
	}
	if err == nil {
		close(s.ready)
		s.log.Info("service listening", "root", s.root, "unix", s.unixPath, "tcp", info.TCP, "pid", info.PID)
		err = s.wait(ctx, serveErr)
		if err != nil {
			lns = lns[1:]
		}
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	for range lns {
		<-serveErr // Serve returns once the server stopped
	}
	return err
}

// wait blocks until the service should shut down and says why: nil for a
// requested stop, the listener's error when one failed (that listener's
// Serve has then returned).
func (s *Service) wait(ctx context.Context, serveErr <-chan error) error {
	select {
	case <-ctx.Done():
		s.log.Info("shutting down", "reason", context.Cause(ctx))
		return nil
	case <-s.parentGone:
		s.log.Info("shutting down", "reason", fmt.Sprintf("parent process %d is gone and no run is open", s.opts.ParentPID))
		return nil
	case err := <-serveErr:
		err = fmt.Errorf("serve: %w", err)
		s.log.Error("listener failed", "err", err)
		return err
	}
}

// Ready is closed once Run serves, health checks answer SERVING and the
// port file (if any) is written.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// Close shuts the service down as Run does. It is safe to call more than
// once and without Run.
func (s *Service) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.shutdown() })
	return s.closeErr
}

func (s *Service) shutdown() error {
	if s.health != nil {
		s.health.Shutdown()
	}
	close(s.stopWatch)
	s.mu.Lock()
	s.draining = true
	runs := make([]*run, 0, len(s.runs))
	for _, r := range s.runs {
		runs = append(runs, r)
	}
	s.mu.Unlock()
	s.drain()

	// Writers commit and answer everything queued, then stop.
	for _, r := range runs {
		<-r.ready
		if r.openErr == nil {
			r.stop()
		}
	}
	for _, r := range runs {
		if r.openErr == nil {
			<-r.writerDone
		}
	}
	close(s.drained)

	// Publish streams deliver their last acks and end; Read streams end.
	if s.grpc != nil {
		done := make(chan struct{})
		go func() {
			s.grpc.GracefulStop()
			close(done)
		}()
		t := time.NewTimer(s.opts.ShutdownTimeout)
		select {
		case <-done:
		case <-t.C:
			s.log.Warn("streams still open after the shutdown timeout; closing them", "timeout", s.opts.ShutdownTimeout)
			s.grpc.Stop()
			<-done
		}
		t.Stop()
	}
	s.cancelFollow()
	s.wg.Wait() // lifecycles close the logs
	return s.release()
}

// release removes the socket and port file and unlocks the root.
func (s *Service) release() error {
	var errs []error
	if s.unixLn != nil {
		s.unixLn.Close()
		if err := os.Remove(s.unixPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if s.tcpLn != nil {
		s.tcpLn.Close()
	}
	if s.opts.PortFile != "" {
		if err := os.Remove(s.opts.PortFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if s.runsFile != nil {
		s.runsFile.Close()
	}
	s.metrics.unregister()
	if s.lock != nil {
		if err := s.lock.release(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("release root %s: %w", s.root, err)
	}
	return nil
}

// isDraining reports whether shutdown has begun.
func (s *Service) isDraining() bool {
	return s.drainCtx.Err() != nil
}

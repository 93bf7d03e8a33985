package client

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/root"
)

// Client is a connection to the runlog service and the owner of the runs it
// opened. It runs one goroutine that keeps a single Publish stream up
// (reconnecting and restarting the service when needed) and sends every
// run's batches on it, plus one goroutine per stream that reads acks. It is
// safe for concurrent use.
type Client struct {
	opts Options
	log  *slog.Logger
	root string
	host string
	t0   time.Time // origin of the publish timestamps

	ctx    context.Context // cancelled by Close: stops the loop
	cancel context.CancelFunc
	done   chan struct{} // closed when the loop has returned
	kick   chan struct{} // wakes the sender; buffered, one pending wake is enough
	need   chan struct{} // a caller waits for a stream; buffered like kick

	// startMu serialises finding and starting a service.
	startMu sync.Mutex

	// procsMu protects started.
	procsMu sync.Mutex
	started []*started    // services this client started and has not reaped
	reaped  chan struct{} // closed when the reaper has returned

	// mu protects the fields below.
	mu        sync.Mutex
	conn      *grpc.ClientConn
	target    string
	rpc       runlogv1.RunlogClient
	epoch     uint64        // counts Publish streams opened; 0 before the first
	ready     bool          // the stream of epoch is up and its runs re-attached
	state     chan struct{} // closed and replaced when ready, epoch or err change
	err       error         // terminal: reconnecting gave up
	closed    bool
	runs      map[*Run]struct{}
	batches   map[uint64]*batch // in flight on the current stream, by batch number
	nextBatch uint64

	stats struct {
		published, acked, rejected, batches, resent, reconnects, waits, started atomic.Uint64
		waitNanos                                                               atomic.Int64
	}
}

// batch is one Publish request awaiting its response.
type batch struct {
	run  *Run
	last uint64 // client_seq of its last record
	gen  uint64 // the run's send generation when it was sent
}

// Stats counts what a client did since Connect.
type Stats struct {
	Published   uint64        // records accepted by the publishing calls
	Acked       uint64        // records the service acknowledged (durable or rejected)
	Rejected    uint64        // records the service refused
	Batches     uint64        // Publish requests sent
	Resent      uint64        // records sent again after a reconnect or a retryable error
	Reconnects  uint64        // Publish streams re-established
	Started     uint64        // service processes this client started (a restart after a crash is one more)
	WindowWaits uint64        // publishing calls that blocked on a full window
	WindowWait  time.Duration // total time they blocked
}

// Connect finds the service, starting one when none answers (unless
// opts.NoStart), and returns a client attached to it.
func Connect(ctx context.Context, opts Options) (*Client, error) {
	opts = opts.withDefaults()
	dir, err := root.Resolve(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if opts.Address == "" {
		opts.Address = os.Getenv("RUNLOG_SERVICE")
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	c := &Client{
		opts:    opts,
		log:     opts.Logger,
		root:    string(dir),
		host:    host,
		t0:      time.Now(),
		done:    make(chan struct{}),
		kick:    make(chan struct{}, 1),
		need:    make(chan struct{}, 1),
		state:   make(chan struct{}),
		runs:    make(map[*Run]struct{}),
		batches: make(map[uint64]*batch),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.reaped = make(chan struct{})
	go func() {
		defer close(c.reaped)
		c.reaper(c.ctx)
	}()
	if err := c.ensure(ctx); err != nil {
		c.cancel()
		<-c.reaped
		c.mu.Lock()
		if c.conn != nil {
			c.conn.Close()
		}
		c.mu.Unlock()
		return nil, fmt.Errorf("connect: %w", err)
	}
	go c.loop()
	return c, nil
}

// Root returns the service directory the client uses.
func (c *Client) Root() string { return c.root }

// Target returns the gRPC target the client is connected to.
func (c *Client) Target() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.target
}

// ServicePID returns the pid of the service running on the client's root, as
// its lock file says, or 0 when it cannot tell.
func (c *Client) ServicePID() int {
	info, err := ReadLock(c.root)
	if err != nil {
		return 0
	}
	return info.PID
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	return Stats{
		Published:   c.stats.published.Load(),
		Acked:       c.stats.acked.Load(),
		Rejected:    c.stats.rejected.Load(),
		Batches:     c.stats.batches.Load(),
		Resent:      c.stats.resent.Load(),
		Reconnects:  c.stats.reconnects.Load(),
		Started:     c.stats.started.Load(),
		WindowWaits: c.stats.waits.Load(),
		WindowWait:  time.Duration(c.stats.waitNanos.Load()),
	}
}

// RPC returns the raw service client of the current connection, for calls
// this package does not wrap. It changes after a reconnect.
func (c *Client) RPC() runlogv1.RunlogClient {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rpc
}

// ListRuns lists the runs under the service's root.
func (c *Client) ListRuns(ctx context.Context) ([]*runlogv1.RunSummary, error) {
	var out []*runlogv1.RunSummary
	err := c.call(ctx, func(ctx context.Context, rpc runlogv1.RunlogClient) error {
		resp, err := rpc.ListRuns(ctx, &runlogv1.ListRunsRequest{})
		out = resp.GetRuns()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return out, nil
}

// Query returns a run's state folded from its log by the service, with up
// to maxSamples history rows of keys.
func (c *Client) Query(ctx context.Context, runID string, keys []string, maxSamples int) (*runlogv1.QueryResponse, error) {
	var out *runlogv1.QueryResponse
	err := c.call(ctx, func(ctx context.Context, rpc runlogv1.RunlogClient) error {
		var err error
		out, err = rpc.Query(ctx, &runlogv1.QueryRequest{RunId: runID, HistoryKeys: keys, MaxSamples: uint32(maxSamples)})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("query run %s: %w", runID, err)
	}
	return out, nil
}

// Init opens a run (new or resumed, as opts.Resume says) and attaches this
// client to it with a client id of its own.
func (c *Client) Init(ctx context.Context, opts RunOptions) (*Run, error) {
	var cfg []field
	if opts.Config != nil {
		var err error
		if cfg, err = convertMap(nil, opts.Config); err != nil {
			return nil, fmt.Errorf("init run: config: %w", err)
		}
	}
	var nonce [4]byte
	crand.Read(nonce[:])
	clientID := fmt.Sprintf("%s-%d-%s", c.host, os.Getpid(), hex.EncodeToString(nonce[:]))
	req := &runlogv1.InitRequest{
		RunId:    opts.ID,
		Resume:   opts.Resume,
		Mode:     opts.Mode,
		ClientId: clientID,
		Info: &runlogv1.RunInfo{
			Project: opts.Project,
			Name:    opts.Name,
			Group:   opts.Group,
			Tags:    opts.Tags,
			Notes:   opts.Notes,
			JobType: opts.JobType,
			Program: os.Args[0],
			Args:    os.Args[1:],
		},
		ClientPid:       int64(os.Getpid()),
		StatsDisabled:   opts.NoStats,
		StatsIntervalMs: statsMillis(opts.StatsInterval),
	}
	// The id is made here rather than by the service so that a retry after
	// the service went away mid-call names the same run.
	made := req.RunId == ""
	if made {
		req.RunId = strings.ToLower(ulid.Make().String())
	}
	var resp *runlogv1.InitResponse
	attempts := 0
	epoch, err := c.callAt(ctx, func(ctx context.Context, rpc runlogv1.RunlogClient) error {
		attempts++
		var err error
		resp, err = rpc.Init(ctx, req)
		if made && attempts > 1 && status.Code(err) == codes.AlreadyExists {
			// The attempt that failed did create it: nobody else knows
			// the id.
			must := proto.Clone(req).(*runlogv1.InitRequest)
			must.Resume = ResumeMust
			resp, err = rpc.Init(ctx, must)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("init run %s: %w", req.RunId, err)
	}
	r := newRun(c, resp, clientID, opts.Mode, epoch)
	r.statsOff, r.statsMs = opts.NoStats, statsMillis(opts.StatsInterval)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.runs[r] = struct{}{}
	c.mu.Unlock()
	if cfg != nil {
		if err := r.publish(context.Background(), &runlogv1.Record{Payload: &runlogv1.Record_Config{
			Config: &runlogv1.ConfigUpdate{Set: toItems(cfg)},
		}}); err != nil {
			return r, fmt.Errorf("init run %s: config: %w", r.id, err)
		}
	}
	return r, nil
}

// Close flushes every open run (for at most Options.CloseTimeout), tells the
// service this client is leaving, stops the client's goroutines and waits for
// them. Runs that were not finished stay open in the service until it sees
// the process gone. Close returns the flush errors, if any.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	runs := make([]*Run, 0, len(c.runs))
	for r := range c.runs {
		runs = append(runs, r)
	}
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), c.opts.CloseTimeout)
	var errs []error
	for _, r := range runs {
		if err := r.Flush(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close: %w", err))
		}
	}
	for _, r := range runs {
		if r.failed() != nil {
			continue
		}
		tctx, tcancel := context.WithTimeout(ctx, c.opts.HealthTimeout)
		err := c.call(tctx, func(ctx context.Context, rpc runlogv1.RunlogClient) error {
			_, err := rpc.Teardown(ctx, &runlogv1.TeardownRequest{ClientId: r.clientID})
			return err
		})
		tcancel()
		if err != nil {
			c.log.Warn("teardown", "run", r.id, "client", r.clientID, "err", err)
		}
	}
	cancel()

	c.cancel()
	<-c.done
	c.mu.Lock()
	if c.conn != nil {
		c.conn.Close()
	}
	c.mu.Unlock()
	for _, r := range runs {
		r.close()
	}
	<-c.reaped
	c.reap()
	return errors.Join(errs...)
}

// wake makes the sender look at the runs again.
func (c *Client) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// stamp returns the publish time of a record, or 0 when nobody measures.
func (c *Client) stamp() int64 {
	if c.opts.OnAck == nil {
		return 0
	}
	return int64(time.Since(c.t0))
}

func (c *Client) now() int64 { return int64(time.Since(c.t0)) }

// changedLocked wakes everyone waiting on the client's state.
func (c *Client) changedLocked() {
	close(c.state)
	c.state = make(chan struct{})
}

// waitReady waits until a stream is up and returns the connection's client
// and the stream's epoch.
func (c *Client) waitReady(ctx context.Context) (runlogv1.RunlogClient, uint64, error) {
	for {
		c.mu.Lock()
		if c.err != nil {
			err := c.err
			c.mu.Unlock()
			return nil, 0, err
		}
		if c.ready {
			rpc, epoch := c.rpc, c.epoch
			c.mu.Unlock()
			return rpc, epoch, nil
		}
		ch := c.state
		c.mu.Unlock()
		select {
		case c.need <- struct{}{}:
		default:
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-c.ctx.Done():
			return nil, 0, ErrClosed
		}
	}
}

// call runs a unary RPC, waiting for the connection first and trying again
// when the call failed because the service went away (it is restarted and
// the runs re-attached in between). Only idempotent calls go through here.
func (c *Client) call(ctx context.Context, fn func(context.Context, runlogv1.RunlogClient) error) error {
	_, err := c.callAt(ctx, fn)
	return err
}

// callAt is call that also returns the epoch of the stream the successful
// attempt ran beside.
func (c *Client) callAt(ctx context.Context, fn func(context.Context, runlogv1.RunlogClient) error) (uint64, error) {
	for {
		rpc, epoch, err := c.waitReady(ctx)
		if err != nil {
			return 0, err
		}
		err = fn(ctx, rpc)
		if err == nil {
			return epoch, nil
		}
		code := status.Code(err)
		if code != codes.Unavailable && !(code == codes.Canceled && ctx.Err() == nil) {
			return 0, err
		}
		// Give the loop a moment to notice the break; the service may also
		// have answered UNAVAILABLE while its stream stayed up.
		c.mu.Lock()
		same, ch := c.epoch == epoch, c.state
		c.mu.Unlock()
		if same {
			t := time.NewTimer(200 * time.Millisecond)
			select {
			case <-ch:
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return 0, err
			}
			t.Stop()
		}
	}
}

// health reports whether the service at conn answers.
func (c *Client) health(ctx context.Context, conn *grpc.ClientConn) bool {
	ctx, cancel := context.WithTimeout(ctx, c.opts.HealthTimeout)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if status.Code(err) == codes.Unimplemented {
		return true // a service without the health service still answers
	}
	return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
}

// try makes target the client's connection if a service answers there.
func (c *Client) try(ctx context.Context, target string) bool {
	c.mu.Lock()
	conn, cur := c.conn, c.target
	c.mu.Unlock()
	if conn != nil && cur == target {
		// A connection in backoff would fail the check at once although the
		// service may be back.
		conn.ResetConnectBackoff()
		if c.health(ctx, conn) {
			return true
		}
	}
	fresh, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: c.opts.HealthTimeout,
		}),
	)
	if err != nil {
		c.log.Debug("dial", "target", target, "err", err)
		return false
	}
	if !c.health(ctx, fresh) {
		fresh.Close()
		return false
	}
	c.mu.Lock()
	old := c.conn
	c.conn, c.target, c.rpc = fresh, target, runlogv1.NewRunlogClient(fresh)
	c.mu.Unlock()
	if old != nil {
		old.Close()
	}
	c.log.Info("connected to runlog service", "target", target)
	return true
}

// ensure connects to a service: the configured address, then the root's
// socket, then one it starts.
func (c *Client) ensure(ctx context.Context) error {
	c.startMu.Lock()
	defer c.startMu.Unlock()
	var tried []string
	if c.opts.Address != "" {
		t, err := Target(c.opts.Address)
		if err != nil {
			return err
		}
		if p, ok := strings.CutPrefix(t, "unix://"); ok {
			if err := root.CheckSocket(p); err != nil {
				return err
			}
		}
		if c.try(ctx, t) {
			return nil
		}
		tried = append(tried, c.opts.Address)
	}
	sock := SocketPath(c.root)
	// Another user's socket (or a link) in the root would receive every
	// record: refuse, and start no service beside it.
	if err := root.CheckSocket(sock); err != nil {
		return err
	}
	if t := socketTarget(sock); t != "" && c.try(ctx, t) {
		return nil
	}
	tried = append(tried, sock)
	if c.opts.NoStart {
		return fmt.Errorf("%w at %s", ErrNoService, strings.Join(tried, ", "))
	}
	target, err := c.startService(ctx, func(ctx context.Context) bool {
		t := socketTarget(sock)
		return t != "" && c.try(ctx, t)
	})
	if err != nil {
		return err
	}
	// The port file says the service listens; its health check may still
	// say NOT_SERVING for a moment. The target may also equal the broken
	// connection's (the same socket path): try wakes that connection from
	// its backoff or replaces it.
	deadline := time.Now().Add(c.opts.StartTimeout)
	for !c.try(ctx, target) {
		// A service killed between its port file and its first answer
		// never answers: start another instead of waiting out the timeout.
		// The lock file names it until another service takes the root.
		if info, err := ReadLock(c.root); err == nil && !c.alive(info.PID) {
			return &StartError{Root: c.root, Log: root.Dir(c.root).ServiceLog(), Tail: tail(root.Dir(c.root).ServiceLog(), 10),
				Err: fmt.Errorf("service exited before it answered at %s", target)}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return &StartError{Root: c.root, Log: root.Dir(c.root).ServiceLog(), Tail: tail(root.Dir(c.root).ServiceLog(), 10),
				Err: fmt.Errorf("service started but does not answer at %s", target)}
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	return nil
}

// loop owns the Publish stream: it serves one stream at a time and
// reconnects when it breaks, until Close or until reconnecting gives up.
func (c *Client) loop() {
	defer close(c.done)
	for {
		err := c.serve()
		c.mu.Lock()
		c.ready = false
		clear(c.batches)
		c.changedLocked()
		c.mu.Unlock()
		if c.ctx.Err() != nil {
			return
		}
		if c.idle() {
			// Nothing to resend: do not bring a service back (perhaps one
			// stopped on purpose) until someone needs it.
			c.log.Info("publish stream ended; reconnecting when needed", "err", err)
			select {
			case <-c.need:
			case <-c.ctx.Done():
				return
			}
		} else {
			c.log.Warn("publish stream broken; reconnecting", "err", err)
		}
		if err := c.reconnect(); err != nil {
			if c.ctx.Err() != nil {
				return
			}
			c.fail(err)
			return
		}
		c.stats.reconnects.Add(1)
	}
}

// idle reports whether the client has no open run.
func (c *Client) idle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.runs) == 0
}

// reconnect reaches a service again, with backoff, for at most
// Options.ReconnectTimeout.
func (c *Client) reconnect() error {
	start := time.Now()
	deadline := start.Add(c.opts.ReconnectTimeout)
	wait := 20 * time.Millisecond
	for {
		ctx, cancel := context.WithDeadline(c.ctx, deadline)
		err := c.ensure(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if c.ctx.Err() != nil {
			return c.ctx.Err()
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%w after %s (Options.ReconnectTimeout): %w", ErrGaveUp, time.Since(start).Round(time.Millisecond), err)
		}
		c.log.Debug("reconnect attempt failed", "err", err)
		jittered := wait/2 + rand.N(wait/2+1)
		t := time.NewTimer(min(jittered, time.Until(deadline)))
		select {
		case <-c.ctx.Done():
			t.Stop()
			return c.ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, time.Second)
	}
}

// fail ends the client: every call from now on returns err.
func (c *Client) fail(err error) {
	c.log.Error("runlog client stopped", "err", err)
	c.mu.Lock()
	c.err = err
	c.changedLocked()
	runs := make([]*Run, 0, len(c.runs))
	for r := range c.runs {
		runs = append(runs, r)
	}
	c.mu.Unlock()
	for _, r := range runs {
		r.fail(err)
	}
}

// serve opens a Publish stream, re-attaches the runs and pumps batches and
// acks until the stream breaks or the client closes.
func (c *Client) serve() error {
	c.mu.Lock()
	rpc := c.rpc
	c.mu.Unlock()
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	stream, err := rpc.Publish(ctx)
	if err != nil {
		return fmt.Errorf("open publish stream: %w", err)
	}
	c.mu.Lock()
	c.epoch++
	epoch := c.epoch
	c.mu.Unlock()
	if err := c.resync(ctx, rpc, epoch); err != nil {
		return err
	}
	c.mu.Lock()
	c.ready = true
	c.changedLocked()
	c.mu.Unlock()

	var recvErr error
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		recvErr = c.receive(stream)
	}()
	sendErr := c.send(ctx, rpc, stream, epoch, recvDone)
	cancel()
	<-recvDone
	if sendErr != nil && !errors.Is(sendErr, errStreamDone) {
		return sendErr
	}
	return recvErr
}

// errStreamDone tells serve that the receiver ended the stream.
var errStreamDone = errors.New("stream ended")

// resync re-attaches every run opened before this stream: Init with
// ResumeMust and the run's client id, then resend what the service lacks.
func (c *Client) resync(ctx context.Context, rpc runlogv1.RunlogClient, epoch uint64) error {
	c.mu.Lock()
	runs := make([]*Run, 0, len(c.runs))
	for r := range c.runs {
		runs = append(runs, r)
	}
	c.mu.Unlock()
	for _, r := range runs {
		if err := c.resyncRun(ctx, rpc, r, epoch); err != nil {
			return err
		}
	}
	return nil
}

// resyncRun re-attaches one run unless it already belongs to epoch and was
// not refused. It returns an error only when the stream should be given up.
func (c *Client) resyncRun(ctx context.Context, rpc runlogv1.RunlogClient, r *Run, epoch uint64) error {
	r.mu.Lock()
	need := (r.epoch < epoch || r.reattach) && !r.done() && !(r.finishing && r.w.n == 0)
	if !need {
		if r.epoch < epoch {
			r.epoch = epoch
			r.inflight = 0
		}
		r.reattach = false
	}
	r.mu.Unlock()
	if !need {
		return nil
	}
	// A service that takes this long to re-attach a run is not healthy;
	// give up on the stream and reconnect.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := rpc.Init(ctx, &runlogv1.InitRequest{
		RunId:     r.id,
		Resume:    ResumeMust,
		Mode:      r.mode,
		ClientId:  r.clientID,
		ClientPid: int64(os.Getpid()),
		// The last Init decides a run's sampling: repeat the choice.
		StatsDisabled:   r.statsOff,
		StatsIntervalMs: r.statsMs,
	})
	if err != nil {
		switch status.Code(err) {
		case codes.Unavailable, codes.Canceled, codes.DeadlineExceeded, codes.Internal, codes.Unknown:
			return fmt.Errorf("re-attach run %s: %w", r.id, err)
		}
		r.fail(fmt.Errorf("re-attach run %s: %w", r.id, err))
		return nil
	}
	r.mu.Lock()
	r.resyncLocked(resp.GetAckedClientSeq(), epoch)
	r.mu.Unlock()
	c.log.Info("re-attached run", "run", r.id, "client", r.clientID, "acked", resp.GetAckedClientSeq())
	return nil
}

// send is the sender: it turns each run's unsent records into batches
// whenever the run may have another batch in flight, and sleeps until a
// publish, an ack or a linger deadline wakes it.
func (c *Client) send(ctx context.Context, rpc runlogv1.RunlogClient, stream runlogv1.Runlog_PublishClient, epoch uint64, recvDone <-chan struct{}) error {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var runs []*Run
	for {
		c.mu.Lock()
		runs = runs[:0]
		for r := range c.runs {
			runs = append(runs, r)
		}
		c.mu.Unlock()

		next := time.Duration(-1)
		for _, r := range runs {
			if r.needsAttach(epoch) {
				// Opened while the previous stream was breaking, or
				// refused by the service.
				if err := c.resyncRun(ctx, rpc, r, epoch); err != nil {
					return err
				}
			}
			for {
				req, last, gen, wait := r.take(c.now())
				if req == nil {
					if wait > 0 && (next < 0 || wait < next) {
						next = wait
					}
					break
				}
				c.mu.Lock()
				c.nextBatch++
				req.Batch = c.nextBatch
				c.batches[req.Batch] = &batch{run: r, last: last, gen: gen}
				c.mu.Unlock()
				c.stats.batches.Add(1)
				if err := stream.Send(req); err != nil {
					return fmt.Errorf("publish: %w", err)
				}
			}
		}
		if next > 0 {
			timer.Reset(next)
		}
		select {
		case <-c.kick:
		case <-timer.C:
		case <-recvDone:
			return errStreamDone
		case <-ctx.Done():
			return ctx.Err()
		}
		timer.Stop()
	}
}

// receive reads acks until the stream ends.
func (c *Client) receive(stream runlogv1.Runlog_PublishClient) error {
	var lat []time.Duration
	for {
		resp, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("publish stream: %w", err)
		}
		c.mu.Lock()
		b := c.batches[resp.GetBatch()]
		delete(c.batches, resp.GetBatch())
		c.mu.Unlock()
		if b == nil {
			c.log.Warn("ack for unknown batch", "batch", resp.GetBatch(), "run", resp.GetRunId())
			continue
		}
		lat = b.run.ack(resp, b, lat[:0])
		if c.opts.OnAck != nil && len(lat) > 0 {
			c.opts.OnAck(b.run.id, lat)
		}
		c.wake()
	}
}

// statsMillis is a stats interval in whole milliseconds for InitRequest.
func statsMillis(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	return uint32(min(d.Milliseconds(), int64(^uint32(0))))
}

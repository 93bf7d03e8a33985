package hub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/store"
)

// Options configure NewServer. The zero value is a working default: no
// token, no TLS.
type Options struct {
	// Logger receives the hub's messages. Nil discards them.
	Logger *slog.Logger
	// Token, when set, is the bearer token every RPC must carry.
	Token string
	// TLSCertFile and TLSKeyFile, when set, make the server speak TLS with
	// this PEM certificate and key.
	TLSCertFile string
	TLSKeyFile  string
	// MaxRecvMsgBytes bounds one request. Zero means 64 MiB, well above the
	// service's default record limit of 4 MiB.
	MaxRecvMsgBytes int
	// MaxQueued is how many requests of one stream may wait while the
	// previous ones commit; they are merged into one append. Zero means 16.
	MaxQueued int
	// Metrics, when set, gets the hub's Prometheus metrics: records
	// ingested, store append latency, ingest errors and streams.
	Metrics prometheus.Registerer
	// ShutdownTimeout is how long Run lets streams finish once its context
	// is done before it closes them (default 10s).
	ShutdownTimeout time.Duration
}

// Server is the hub's gRPC server: the Hub service and the standard health
// service on a store. It owns the goroutines of its streams: Stop and
// GracefulStop return only once every handler and every stream's receiver
// has ended. It is safe for concurrent use.
type Server struct {
	gs    *grpc.Server
	svc   *service
	grace time.Duration
}

// Run serves lis until ctx is done, then stops in layers: GracefulStop,
// cut short by Stop after Options.ShutdownTimeout. It returns nil after a
// stop that ctx asked for, and Serve's error when serving failed. Either
// way every goroutine of the server has ended when it returns; the caller
// closes the store after it.
func (s *Server) Run(ctx context.Context, lis net.Listener) error {
	served := make(chan error, 1)
	go func() { served <- s.gs.Serve(lis) }()
	select {
	case err := <-served:
		s.Stop()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.svc.log.Info("hub stopping")
	stopped := make(chan struct{})
	go func() {
		s.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(s.grace):
		s.svc.log.Warn("streams still open after the shutdown timeout; closing them", "timeout", s.grace)
		s.Stop()
		<-stopped
	}
	<-served
	return nil
}

// Serve accepts connections on lis until Stop or GracefulStop.
func (s *Server) Serve(lis net.Listener) error { return s.gs.Serve(lis) }

// GracefulStop stops accepting, waits for the calls in progress to finish
// and for their goroutines to end.
func (s *Server) GracefulStop() {
	s.gs.GracefulStop()
	s.svc.receivers.Wait()
}

// Stop closes every connection, ending the calls in progress, and waits for
// their goroutines to end. It may be called while GracefulStop waits, to cut
// it short.
func (s *Server) Stop() {
	s.gs.Stop()
	s.svc.receivers.Wait()
}

// NewServer returns a server of st. The caller serves it and, on shutdown,
// stops it before closing st.
func NewServer(st store.Store, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxRecvMsgBytes <= 0 {
		opts.MaxRecvMsgBytes = 64 << 20
	}
	if opts.MaxQueued <= 0 {
		opts.MaxQueued = 16
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 10 * time.Second
	}
	sopts := []grpc.ServerOption{grpc.MaxRecvMsgSize(opts.MaxRecvMsgBytes)}
	if opts.TLSCertFile != "" || opts.TLSKeyFile != "" {
		creds, err := credentials.NewServerTLSFromFile(opts.TLSCertFile, opts.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("hub tls: %w", err)
		}
		sopts = append(sopts, grpc.Creds(creds))
	}
	if opts.Token != "" {
		b := newBearer(opts.Token, opts.Logger)
		sopts = append(sopts, grpc.ChainUnaryInterceptor(b.unary), grpc.ChainStreamInterceptor(b.stream))
	}
	// Stop waits for the handlers, so that no receiver starts after it.
	sopts = append(sopts, grpc.WaitForHandlers(true))
	gs := grpc.NewServer(sopts...)
	svc := &service{st: st, log: opts.Logger, maxQueued: opts.MaxQueued, metrics: newMetrics(opts.Metrics)}
	runlogv1.RegisterHubServer(gs, svc)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(runlogv1.Hub_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	return &Server{gs: gs, svc: svc, grace: opts.ShutdownTimeout}, nil
}

// service implements runlogv1.HubServer on a store.
type service struct {
	runlogv1.UnimplementedHubServer
	st        store.Store
	log       *slog.Logger
	maxQueued int
	metrics   *metrics
	// receivers counts the streams' receiving goroutines; Server's stops
	// wait for them.
	receivers sync.WaitGroup
}

var _ runlogv1.HubServer = (*service)(nil)

// Ingest implements runlogv1.HubServer.
func (s *service) Ingest(stream grpc.BidiStreamingServer[runlogv1.IngestRequest, runlogv1.IngestResponse]) error {
	ctx := stream.Context()
	s.metrics.streams.Inc()
	defer s.metrics.streams.Dec()
	// The receiver reads ahead so that requests arriving during a commit are
	// merged into the next one. It ends when the stream does: on the
	// client's end of stream, or when Ingest returns and gRPC cancels the
	// stream, which unblocks its Recv. Ingest cannot wait for it (its Recv
	// returns only after Ingest did), so the Server does: its stops wait on
	// receivers after gRPC has ended every handler.
	reqs := make(chan *runlogv1.IngestRequest, s.maxQueued)
	var recvErr error // written by the receiver before it closes reqs
	s.receivers.Add(1)
	go func() {
		defer s.receivers.Done()
		defer close(reqs)
		for {
			r, err := stream.Recv()
			if err != nil {
				recvErr = err
				return
			}
			select {
			case reqs <- r:
			case <-ctx.Done():
				recvErr = ctx.Err()
				return
			}
		}
	}()

	var runID string
	group := make([]*runlogv1.IngestRequest, 0, s.maxQueued+1)
	var recs [][]byte
	for {
		r, ok := <-reqs
		if !ok {
			if errors.Is(recvErr, io.EOF) {
				return nil
			}
			return recvErr
		}
		group = append(group[:0], r)
		size := requestBytes(r)
	more:
		for len(group) <= s.maxQueued && size < maxMergeBytes {
			select {
			case r, ok := <-reqs:
				if !ok {
					break more // the closed channel is seen again above
				}
				group = append(group, r)
				size += requestBytes(r)
			default:
				break more
			}
		}
		recs = recs[:0]
		for _, r := range group {
			if runID == "" {
				runID = r.GetRunId()
			}
			if r.GetRunId() != runID {
				return status.Errorf(codes.InvalidArgument, "ingest stream of run %s carries a request for run %s: open one stream per run", runID, r.GetRunId())
			}
			recs = append(recs, r.GetRecords()...)
		}
		var (
			hw  uint64
			err error
		)
		if len(recs) == 0 {
			if !store.ValidRunID(runID) {
				err = fmt.Errorf("run %q: %w", runID, store.ErrBadRunID)
			} else {
				hw, err = s.st.HighWater(ctx, runID)
			}
		} else {
			start := time.Now()
			hw, err = s.st.Append(ctx, runID, recs)
			if err == nil {
				s.metrics.append(len(recs), time.Since(start))
			}
		}
		if err != nil {
			st := statusOf(err)
			s.metrics.refused.WithLabelValues(st.Code().String()).Inc()
			if c := st.Code(); c == codes.InvalidArgument || c == codes.FailedPrecondition || c == codes.AlreadyExists {
				s.log.Warn("ingest refused", "run", runID, "high_water", hw, "err", err)
			}
			return withMark(st, runID, hw, err)
		}
		for _, r := range group {
			if err := stream.Send(&runlogv1.IngestResponse{RunId: runID, Batch: r.GetBatch(), HighWater: hw}); err != nil {
				return err
			}
		}
		clear(recs)
	}
}

// maxMergeBytes bounds the record bytes of requests merged into one append.
const maxMergeBytes = 32 << 20

func requestBytes(r *runlogv1.IngestRequest) int {
	n := 0
	for _, rec := range r.GetRecords() {
		n += len(rec)
	}
	return n
}

// withMark attaches the run's high-water mark to refusals that carry one.
func withMark(st *status.Status, runID string, hw uint64, err error) error {
	var gap *store.GapError
	var bad *store.RecordError
	if !errors.As(err, &gap) && !errors.As(err, &bad) {
		return st.Err()
	}
	if gap != nil {
		hw = gap.HighWater
	}
	d, derr := st.WithDetails(&runlogv1.HighWaterMark{RunId: runID, HighWater: hw})
	if derr != nil {
		return st.Err()
	}
	return d.Err()
}

// statusOf maps an error of the store to a gRPC status: the one place where
// the hub decides what a client sees.
func statusOf(err error) *status.Status {
	var gap *store.GapError
	var bad *store.RecordError
	var mm *store.MismatchError
	switch {
	case errors.As(err, &gap):
		return status.New(codes.FailedPrecondition, gap.Error())
	case errors.As(err, &mm):
		// Not FAILED_PRECONDITION: a sender would rewind and resend the
		// same records forever.
		return status.New(codes.AlreadyExists, fmt.Sprintf(
			"run %s on the hub holds a different record at seq %d: another run uses this run id; sync this run under another id",
			mm.RunID, mm.Seq))
	case errors.As(err, &bad):
		return status.New(codes.InvalidArgument, bad.Error())
	case errors.Is(err, store.ErrBadRunID):
		return status.New(codes.InvalidArgument, err.Error()+": a run id is 1 to 128 of [A-Za-z0-9._-], starting with a letter or digit")
	case errors.Is(err, store.ErrNotFound):
		return status.New(codes.NotFound, err.Error())
	case errors.Is(err, store.ErrClosed):
		return status.New(codes.Unavailable, "the hub is shutting down")
	case errors.Is(err, store.ErrUnavailable):
		return status.New(codes.Unavailable, "the hub's database is unavailable: "+err.Error())
	case errors.Is(err, syscall.ENOSPC):
		return status.New(codes.ResourceExhausted, "the hub's disk is full: "+err.Error())
	case errors.Is(err, context.Canceled):
		return status.New(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.New(codes.DeadlineExceeded, err.Error())
	}
	if st, ok := status.FromError(err); ok {
		return st
	}
	return status.New(codes.Internal, err.Error())
}

// ListRuns implements runlogv1.HubServer.
func (s *service) ListRuns(ctx context.Context, req *runlogv1.HubListRunsRequest) (*runlogv1.HubListRunsResponse, error) {
	runs, err := s.st.ListRuns(ctx, store.ListOptions{Project: req.GetProject()})
	if err != nil {
		return nil, statusOf(err).Err()
	}
	return &runlogv1.HubListRunsResponse{Runs: runs}, nil
}

// GetRun implements runlogv1.HubServer.
func (s *service) GetRun(ctx context.Context, req *runlogv1.GetRunRequest) (*runlogv1.GetRunResponse, error) {
	if !store.ValidRunID(req.GetRunId()) {
		return nil, statusOf(fmt.Errorf("run %q: %w", req.GetRunId(), store.ErrBadRunID)).Err()
	}
	run, state, err := s.st.Run(ctx, req.GetRunId())
	if err != nil {
		return nil, statusOf(err).Err()
	}
	return &runlogv1.GetRunResponse{Run: run, State: state}, nil
}

// historyChunk is how many samples one History response carries.
const historyChunk = 1000

// History implements runlogv1.HubServer.
func (s *service) History(req *runlogv1.HubHistoryRequest, stream grpc.ServerStreamingServer[runlogv1.HubHistoryResponse]) error {
	if !store.ValidRunID(req.GetRunId()) {
		return statusOf(fmt.Errorf("run %q: %w", req.GetRunId(), store.ErrBadRunID)).Err()
	}
	q := store.HistoryQuery{
		Keys:       req.GetKeys(),
		MinStep:    req.GetMinStep(),
		MaxStep:    req.GetMaxStep(),
		HasMaxStep: req.MaxStep != nil,
		MaxSamples: int(req.GetMaxSamples()),
	}
	var chunk []*runlogv1.HistorySample
	err := s.st.History(stream.Context(), req.GetRunId(), q, func(h *runlogv1.HistorySample) error {
		chunk = append(chunk, h)
		if len(chunk) < historyChunk {
			return nil
		}
		err := stream.Send(&runlogv1.HubHistoryResponse{Samples: chunk})
		chunk = nil
		return err
	})
	if err != nil {
		return statusOf(err).Err()
	}
	if len(chunk) > 0 {
		return stream.Send(&runlogv1.HubHistoryResponse{Samples: chunk})
	}
	return nil
}

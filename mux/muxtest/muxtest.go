// Package muxtest runs a real runlog service for tests: mux on a unix socket
// in a temporary root, with a gRPC connection to it, and builds encoded
// records the way clients send them.
package muxtest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	"github.com/runlog/runlog/mux"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// Server is a service running in the test process.
type Server struct {
	*mux.Service
	Conn   *grpc.ClientConn
	Client runlogv1.RunlogClient

	cancel context.CancelFunc
	exited chan struct{} // closed when Run returned
	err    error         // Run's error, set before exited is closed
}

// Start opens a service on a new temporary root and serves it until the
// test ends (or Stop). A nil opts.Logger logs to the test.
func Start(t testing.TB, opts mux.Options) *Server {
	t.Helper()
	return StartAt(t, t.TempDir(), opts)
}

// Logger returns a logger that writes to the test's log.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// StartAt is Start on a given root, for tests that restart a service.
func StartAt(t testing.TB, root string, opts mux.Options) *Server {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = Logger(t)
	}
	svc, err := mux.Open(root, opts)
	if err != nil {
		t.Fatalf("open service: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{Service: svc, cancel: cancel, exited: make(chan struct{})}
	go func() {
		s.err = svc.Run(ctx)
		close(s.exited)
	}()
	s.Conn = Dial(t, svc.UnixPath())
	s.Client = runlogv1.NewRunlogClient(s.Conn)
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("service shutdown: %v", err)
		}
	})
	select {
	case <-svc.Ready():
	case <-s.exited:
		t.Fatalf("service on %s stopped before it was ready: %v", svc.UnixPath(), s.err)
	}
	if err := awaitServing(s.Conn); err != nil {
		t.Fatalf("service on %s: %v", svc.UnixPath(), err)
	}
	return s
}

// awaitServing watches the health service until it reports SERVING, as a
// client that did not start the service would.
func awaitServing(conn *grpc.ClientConn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	if err != nil {
		return err
	}
	for {
		resp, err := w.Recv()
		if err != nil {
			return err
		}
		if resp.Status == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
	}
}

// Exited is closed when Run has returned, by Stop or on its own.
func (s *Server) Exited() <-chan struct{} { return s.exited }

// Stop shuts the service down (as SIGTERM does) and returns Run's error.
// Calling it again returns the same error.
func (s *Server) Stop() error {
	s.cancel()
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("service did not stop within 30s")
	}
	s.Conn.Close()
	return s.err
}

// Dial connects to a unix socket.
func Dial(t testing.TB, socket string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(128<<20), grpc.MaxCallSendMsgSize(128<<20)))
	if err != nil {
		t.Fatalf("dial %s: %v", socket, err)
	}
	return conn
}

// Encode encodes a record as a client sends it.
func Encode(t testing.TB, r *runlogv1.Record) []byte {
	t.Helper()
	b, err := proto.Marshal(r)
	if err != nil {
		t.Fatalf("encode record: %v", err)
	}
	return b
}

// History returns a history record at step with keys scalar values, keyed
// "metric/0", "metric/1", ..., as client seq clientSeq.
func History(clientSeq uint64, step int64, keys int) *runlogv1.Record {
	items := make([]*runlogv1.Item, keys)
	for k := range items {
		items[k] = &runlogv1.Item{
			Key:   fmt.Sprintf("metric/%d", k),
			Value: &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: float64(step) * float64(k+1)}},
		}
	}
	return &runlogv1.Record{
		ClientSeq: clientSeq,
		Payload:   &runlogv1.Record_History{History: &runlogv1.HistoryRow{Step: step, Items: items}},
	}
}

// HistoryBatch encodes n history records with client seqs from seq and steps
// from step.
func HistoryBatch(t testing.TB, seq uint64, step int64, n, keys int) [][]byte {
	t.Helper()
	out := make([][]byte, n)
	for i := range out {
		out[i] = Encode(t, History(seq+uint64(i), step+int64(i), keys))
	}
	return out
}

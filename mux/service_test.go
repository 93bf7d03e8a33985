package mux_test

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/runlog/runlog/mux"
	"github.com/runlog/runlog/mux/muxtest"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/root"
	"github.com/runlog/runlog/wal"
)

func TestOneServicePerRootAndPortFile(t *testing.T) {
	checkLeaks(t)
	dir := filepath.Join(t.TempDir(), "root") // created by the service
	portFile := filepath.Join(t.TempDir(), "service.port")
	srv := muxtest.StartAt(t, dir, mux.Options{PortFile: portFile, Listen: "tcp://127.0.0.1:0"})

	data, err := os.ReadFile(portFile)
	if err != nil {
		t.Fatalf("port file: %v", err)
	}
	var pf struct {
		PID  int    `json:"pid"`
		Unix string `json:"unix"`
		TCP  string `json:"tcp"`
	}
	if err := json.Unmarshal(data, &pf); err != nil {
		t.Fatalf("port file %q: %v", data, err)
	}
	if pf.PID != os.Getpid() || pf.Unix != root.Dir(dir).Socket() || pf.TCP == "" || pf.TCP != srv.TCPAddr() {
		t.Fatalf("port file %+v; service on %s and %s", pf, srv.UnixPath(), srv.TCPAddr())
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("root mode %v, %v; want 0700", fi.Mode().Perm(), err)
	}

	// The TCP listener serves the same service, and health says SERVING.
	conn, err := grpc.NewClient(pf.TCP, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hr, err := healthpb.NewHealthClient(conn).Check(ctxT(t), &healthpb.HealthCheckRequest{})
	if err != nil || hr.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health over tcp: %v, %v", hr, err)
	}
	if _, err := runlogv1.NewRunlogClient(conn).Init(ctxT(t), &runlogv1.InitRequest{RunId: "over-tcp"}); err != nil {
		t.Fatalf("Init over tcp: %v", err)
	}

	// A second service on the same root names the first one.
	_, err = mux.Open(dir, mux.Options{})
	var le *mux.LockedError
	if !errors.As(err, &le) {
		t.Fatalf("second Open: %v, want a *LockedError", err)
	}
	if le.PID != os.Getpid() || le.Socket != srv.UnixPath() ||
		!strings.Contains(err.Error(), srv.UnixPath()) || !strings.Contains(err.Error(), "pid") {
		t.Fatalf("second Open: %v (%+v)", err, le)
	}

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{portFile, srv.UnixPath(), root.Dir(dir).Lock()} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s remains after shutdown (%v)", f, err)
		}
	}
	// The root is free again.
	s2, err := mux.Open(dir, mux.Options{})
	if err != nil {
		t.Fatalf("Open after shutdown: %v", err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestExitsWhenParentIsGoneAndNoRunIsOpen(t *testing.T) {
	checkLeaks(t)
	pids := &alivePids{}
	const parent = 888001
	srv := muxtest.Start(t, mux.Options{ParentPID: parent, PollInterval: 5 * time.Millisecond, ProcessAlive: pids.alive})
	ir := initRun(t, srv.Client, &runlogv1.InitRequest{RunId: "last"})
	pids.kill(parent)
	// The open run keeps the service up: it still answers.
	st := openStream(t, srv.Client)
	resp := send(t, st, &runlogv1.PublishRequest{RunId: "last", ClientId: ir.ClientId, Batch: 1,
		Records: muxtest.HistoryBatch(t, 1, 0, 10, 1)})
	if resp.Error != nil || resp.AckedClientSeq != 10 {
		t.Fatalf("publish after the parent left: %v", resp)
	}
	select {
	case <-srv.Exited():
		t.Fatal("service exited with a run open")
	default:
	}
	if _, err := srv.Client.Finish(ctxT(t), &runlogv1.FinishRequest{RunId: "last", ClientId: ir.ClientId}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.Exited():
	case <-time.After(20 * time.Second):
		t.Fatal("service still running 20s after its parent left and the last run closed")
	}
	if err := srv.Stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestShutdownAcksWhatIsQueued(t *testing.T) {
	checkLeaks(t)
	srv := muxtest.Start(t, mux.Options{})
	ir := initRun(t, srv.Client, &runlogv1.InitRequest{RunId: "drain"})
	st := openStream(t, srv.Client)
	const batches = 20
	for b := range batches {
		if err := st.Send(&runlogv1.PublishRequest{RunId: "drain", ClientId: ir.ClientId, Batch: uint64(b),
			Records: muxtest.HistoryBatch(t, uint64(b*100+1), int64(b*100), 100, 5)}); err != nil {
			t.Fatal(err)
		}
	}
	// Wait for the first answer so the stream is known to be in flight.
	first, err := st.Recv()
	if err != nil || first.Error != nil {
		t.Fatalf("first answer: %v, %v", first, err)
	}
	acked := first.AckedClientSeq
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Stop() }()
	// Every answer that arrives is a real ack or an explicit refusal; then
	// the stream ends with UNAVAILABLE or EOF.
	for {
		resp, err := st.Recv()
		if err != nil {
			if s, _ := status.FromError(err); !errors.Is(err, io.EOF) && s.Code() != codes.Unavailable {
				t.Fatalf("stream ended with %v, want EOF or UNAVAILABLE", err)
			}
			break
		}
		if resp.Error == nil {
			acked = max(acked, resp.AckedClientSeq)
		}
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	l, err := wal.Open(ir.Path, wal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := l.ClientSeq(ir.ClientId); got < acked {
		t.Fatalf("log holds client seq %d, but %d was acknowledged", got, acked)
	}
	if l.LastSeq() != 1+l.ClientSeq(ir.ClientId) {
		t.Fatalf("log last seq %d for client seq %d", l.LastSeq(), l.ClientSeq(ir.ClientId))
	}
}

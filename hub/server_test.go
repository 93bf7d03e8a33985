package hub_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/runlog/runlog/hub"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/sender/sendertest"
	"github.com/runlog/runlog/store"
	"github.com/runlog/runlog/store/storetest"
)

var finished = &runlogv1.Exit{Reason: runlogv1.ExitReason_EXIT_REASON_FINISHED}

// serve starts a hub on a loopback port and returns its address and store.
func serve(t *testing.T, opts hub.Options) (string, *store.Bolt) {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	gs, err := hub.NewServer(st, opts)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- gs.Serve(lis) }()
	t.Cleanup(func() {
		gs.Stop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		st.Close()
	})
	return lis.Addr().String(), st
}

func dial(t *testing.T, addr string, opts ...grpc.DialOption) runlogv1.HubClient {
	t.Helper()
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return runlogv1.NewHubClient(conn)
}

func TestIngestPipelinedAcksInOrder(t *testing.T) {
	addr, st := serve(t, hub.Options{})
	c := dial(t, addr)
	ctx := context.Background()
	recs := storetest.Records(t, storetest.Run{Project: "p", Rows: 5000, Keys: 3, Exit: finished})

	stream, err := c.Ingest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Send every batch before reading any ack, then resend a few old ones:
	// the hub must answer each in order and store every record once.
	type sent struct{ batch, last uint64 }
	var want []sent
	batch := uint64(0)
	send := func(from, to int) {
		batch++
		if err := stream.Send(&runlogv1.IngestRequest{RunId: "r1", Batch: batch, Records: recs[from:to]}); err != nil {
			t.Fatal(err)
		}
		want = append(want, sent{batch, uint64(to)})
	}
	for from := 0; from < len(recs); from += 300 {
		send(from, min(from+300, len(recs)))
	}
	send(0, 10)
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var hw uint64
	for i := 0; ; i++ {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			if i != len(want) {
				t.Fatalf("%d responses, want %d", i, len(want))
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetBatch() != want[i].batch {
			t.Fatalf("response %d answers batch %d, want %d", i, resp.GetBatch(), want[i].batch)
		}
		if resp.GetHighWater() < want[i].last || resp.GetHighWater() < hw {
			t.Fatalf("batch %d acked at %d, want >= %d and never lower than %d", resp.GetBatch(), resp.GetHighWater(), want[i].last, hw)
		}
		hw = resp.GetHighWater()
	}
	if hw != uint64(len(recs)) {
		t.Fatalf("final mark %d, want %d", hw, len(recs))
	}
	got, err := c.GetRun(ctx, &runlogv1.GetRunRequest{RunId: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	if string(got.GetRun().GetDigest()) != string(storetest.Digest(recs)) {
		t.Fatal("digest of the hub's copy differs from the records sent")
	}
	if got.GetState().GetStatus() != runlogv1.RunStatus_RUN_STATUS_FINISHED || got.GetState().GetHistoryRows() != 5000 {
		t.Fatalf("state: %v", got.GetState())
	}
	if n, _ := st.HighWater(ctx, "r1"); n != uint64(len(recs)) {
		t.Fatalf("store mark %d", n)
	}
}

func TestIngestEmptyRequestAsksForMark(t *testing.T) {
	addr, _ := serve(t, hub.Options{})
	c := dial(t, addr)
	recs := storetest.Records(t, storetest.Run{Rows: 10, Keys: 1})
	stream, err := c.Ingest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i, rs := range [][][]byte{nil, recs[:7], nil} {
		if err := stream.Send(&runlogv1.IngestRequest{RunId: "r", Batch: uint64(i), Records: rs}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if want := []uint64{0, 7, 7}[i]; resp.GetHighWater() != want {
			t.Fatalf("request %d: mark %d, want %d", i, resp.GetHighWater(), want)
		}
	}
}

func TestIngestGapEndsStreamWithMark(t *testing.T) {
	addr, _ := serve(t, hub.Options{})
	c := dial(t, addr)
	recs := storetest.Records(t, storetest.Run{Rows: 20, Keys: 1})
	stream, err := c.Ingest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	stream.Send(&runlogv1.IngestRequest{RunId: "r", Batch: 1, Records: recs[:5]})
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	stream.Send(&runlogv1.IngestRequest{RunId: "r", Batch: 2, Records: recs[8:]})
	_, err = stream.Recv()
	st := status.Convert(err)
	if st.Code() != codes.FailedPrecondition {
		t.Fatalf("gap: %v, want FAILED_PRECONDITION", err)
	}
	var mark *runlogv1.HighWaterMark
	for _, d := range st.Details() {
		if m, ok := d.(*runlogv1.HighWaterMark); ok {
			mark = m
		}
	}
	if mark == nil || mark.GetHighWater() != 5 || mark.GetRunId() != "r" {
		t.Fatalf("gap status details %v, want a HighWaterMark of 5", st.Details())
	}
}

func TestIngestRefusesAnotherRunWithTheSameID(t *testing.T) {
	addr, st := serve(t, hub.Options{})
	c := dial(t, addr)
	first := storetest.Records(t, storetest.Run{Rows: 20, Keys: 1})
	other := storetest.Records(t, storetest.Run{Rows: 20, Keys: 1})
	if _, err := st.Append(context.Background(), "baseline", first[:10]); err != nil {
		t.Fatal(err)
	}
	stream, err := c.Ingest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	stream.Send(&runlogv1.IngestRequest{RunId: "baseline", Batch: 1, Records: other[9:]})
	_, err = stream.Recv()
	if code := status.Code(err); code != codes.AlreadyExists {
		t.Fatalf("another run at the mark: %v, want ALREADY_EXISTS", err)
	}
	for _, want := range []string{"run baseline", "different record at seq 10", "another run uses this run id", "another id"} {
		if !strings.Contains(status.Convert(err).Message(), want) {
			t.Fatalf("refusal %q does not say %q", status.Convert(err).Message(), want)
		}
	}
	if hw, err := st.HighWater(context.Background(), "baseline"); err != nil || hw != 10 {
		t.Fatalf("after the refusal the hub holds %d, %v; want 10", hw, err)
	}
}

func TestIngestRefusesBadInput(t *testing.T) {
	addr, _ := serve(t, hub.Options{})
	c := dial(t, addr)
	recs := storetest.Records(t, storetest.Run{Rows: 3, Keys: 1})
	tests := []struct {
		name string
		reqs []*runlogv1.IngestRequest
		code codes.Code
	}{
		{"bad run id", []*runlogv1.IngestRequest{{RunId: "../etc", Records: recs}}, codes.InvalidArgument},
		{"bad run id, no records", []*runlogv1.IngestRequest{{RunId: ""}}, codes.InvalidArgument},
		{"two runs on one stream", []*runlogv1.IngestRequest{{RunId: "a", Records: recs[:1]}, {RunId: "b", Records: recs[:1]}}, codes.InvalidArgument},
		{"garbage record", []*runlogv1.IngestRequest{{RunId: "g", Records: [][]byte{{0xff}}}}, codes.InvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stream, err := c.Ingest(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range tc.reqs {
				stream.Send(r)
			}
			for {
				_, err = stream.Recv()
				if err != nil {
					break
				}
			}
			if status.Code(err) != tc.code {
				t.Fatalf("got %v, want %v", err, tc.code)
			}
		})
	}
}

func TestTokenRequiredOnEveryRPC(t *testing.T) {
	addr, _ := serve(t, hub.Options{Token: "s3cret"})
	ctx := context.Background()
	c := dial(t, addr)
	for name, md := range map[string]metadata.MD{
		"none":      nil,
		"wrong":     metadata.Pairs("authorization", "Bearer nope"),
		"no scheme": metadata.Pairs("authorization", "s3cret"),
	} {
		ctx := metadata.NewOutgoingContext(ctx, md)
		if _, err := c.ListRuns(ctx, &runlogv1.HubListRunsRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s token: ListRuns %v, want UNAUTHENTICATED", name, err)
		}
		stream, err := c.Ingest(ctx)
		if err == nil {
			stream.Send(&runlogv1.IngestRequest{RunId: "r"})
			_, err = stream.Recv()
		}
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s token: Ingest %v, want UNAUTHENTICATED", name, err)
		}
	}
	ctx = metadata.NewOutgoingContext(ctx, metadata.Pairs("authorization", "Bearer s3cret"))
	if _, err := c.ListRuns(ctx, &runlogv1.HubListRunsRequest{}); err != nil {
		t.Fatalf("right token: %v", err)
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := sendertest.SelfSigned(t, dir)
	addr, _ := serve(t, hub.Options{TLSCertFile: certFile, TLSKeyFile: keyFile})
	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c := dial(t, addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool})))
	if _, err := c.ListRuns(context.Background(), &runlogv1.HubListRunsRequest{}); err != nil {
		t.Fatalf("over TLS: %v", err)
	}
	plain := dial(t, addr)
	if _, err := plain.ListRuns(context.Background(), &runlogv1.HubListRunsRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("plaintext to a TLS hub: %v, want UNAVAILABLE", err)
	}
}

func TestHistoryAndListOverRPC(t *testing.T) {
	addr, st := serve(t, hub.Options{})
	ctx := context.Background()
	c := dial(t, addr)
	recs := storetest.Records(t, storetest.Run{Project: "p", Rows: 2500, Keys: 2})
	if _, err := st.Append(ctx, "r", recs); err != nil {
		t.Fatal(err)
	}
	list, err := c.ListRuns(ctx, &runlogv1.HubListRunsRequest{})
	if err != nil || len(list.GetRuns()) != 1 || list.GetRuns()[0].GetHighWater() != uint64(len(recs)) {
		t.Fatalf("list: %v, %v", list, err)
	}
	if _, err := c.GetRun(ctx, &runlogv1.GetRunRequest{RunId: "missing"}); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown run: %v, want NOT_FOUND", err)
	}
	count := func(req *runlogv1.HubHistoryRequest) (n int, last int64) {
		t.Helper()
		hs, err := c.History(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for {
			resp, err := hs.Recv()
			if errors.Is(err, io.EOF) {
				return n, last
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range resp.GetSamples() {
				n++
				last = s.GetStep()
			}
		}
	}
	if n, last := count(&runlogv1.HubHistoryRequest{RunId: "r", Keys: []string{"metric/1"}}); n != 2500 || last != 2499 {
		t.Fatalf("all rows: %d, last step %d", n, last)
	}
	max := int64(1200)
	if n, last := count(&runlogv1.HubHistoryRequest{RunId: "r", MinStep: 1000, MaxStep: &max}); n != 201 || last != 1200 {
		t.Fatalf("steps 1000..1200: %d rows, last %d", n, last)
	}
	if n, last := count(&runlogv1.HubHistoryRequest{RunId: "r", MaxSamples: 50}); n != 50 || last != 2499 {
		t.Fatalf("50 samples: %d, last %d", n, last)
	}
}

// openStreams starts a server on st and opens n Ingest streams, each with
// one batch acknowledged, and leaves them open. The caller stops the server
// and closes the connection; served yields Serve's result.
func openStreams(t *testing.T, st store.Store, n int) (gs *hub.Server, conn *grpc.ClientConn, served <-chan error) {
	t.Helper()
	gs, err := hub.NewServer(st, hub.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- gs.Serve(lis) }()
	conn, err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		gs.Stop()
		t.Fatal(err)
	}
	c := runlogv1.NewHubClient(conn)
	recs := storetest.Records(t, storetest.Run{Rows: 10, Keys: 1})
	for i := range n {
		stream, err := c.Ingest(context.Background())
		if err == nil {
			err = stream.Send(&runlogv1.IngestRequest{RunId: fmt.Sprintf("r%d", i), Records: recs})
		}
		if err == nil {
			_, err = stream.Recv()
		}
		if err != nil {
			conn.Close()
			gs.Stop()
			t.Fatal(err)
		}
	}
	return gs, conn, done
}

// TestNoGoroutineLeak checks that streams' goroutines end with the server.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		st, err := store.Open(t.TempDir(), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		gs, conn, served := openStreams(t, st, 5)
		defer func() { <-served }()
		defer gs.Stop() // it must end the open streams
		defer conn.Close()
	}()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines left over (before: %d)\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// TestStopWaitsForStreams checks that the server owns its streams'
// goroutines: when Stop returns, no handler and no receiver is left, without
// waiting for gRPC to get round to them.
func TestStopWaitsForStreams(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	gs, conn, served := openStreams(t, st, 20)
	defer conn.Close()
	gs.Stop()
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	if n := strings.Count(stacks, "hub.(*service).Ingest"); n > 0 {
		t.Fatalf("%d stream goroutine frames left after Stop returned\n%s", n, stacks)
	}
	<-served
}

// TestRunStopsOnContextAndCutsOpenStreams checks Run's shutdown: once its
// context is done, a stream the client keeps open past ShutdownTimeout is
// closed and Run returns nil. Without the cut, GracefulStop waits for the
// stream forever.
func TestRunStopsOnContextAndCutsOpenStreams(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	gs, err := hub.NewServer(st, hub.Options{ShutdownTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- gs.Run(ctx, lis) }()
	c := dial(t, lis.Addr().String())
	stream, err := c.Ingest(context.Background())
	if err == nil {
		err = stream.Send(&runlogv1.IngestRequest{RunId: "r", Records: storetest.Records(t, storetest.Run{Rows: 3, Keys: 1})})
	}
	if err == nil {
		_, err = stream.Recv()
	}
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-ran; err != nil {
		t.Fatalf("Run after its context ended: %v", err)
	}
	if _, err := stream.Recv(); err == nil {
		t.Fatal("the open stream still answers after Run returned")
	}
}

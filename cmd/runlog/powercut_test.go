package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/runlog/runlog/internal/lossyfs"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// TestPowerCut runs the service on a filesystem that loses everything not
// fsynced, cuts the power at random moments while clients create runs, log
// and finish and the service syncs to a hub, and checks after every cut that
// each acknowledged run and record is there and every log opens. A SIGKILL
// test cannot find a missing fsync: the page cache survives it.
func TestPowerCut(t *testing.T) {
	cuts := 20
	if n, err := strconv.Atoi(os.Getenv("RUNLOG_POWERCUT_CUTS")); err == nil && n > 0 {
		cuts = n
	}
	powerCuts(t, cuts)
}

func TestSoakPowerCut(t *testing.T) {
	if os.Getenv("RUNLOG_SOAK") == "" {
		t.Skip("set RUNLOG_SOAK=1 (make soak) for the long power-cut loop")
	}
	powerCuts(t, 500)
}

// mountLossy mounts a lossyfs for the test; without FUSE it skips, or fails
// under CI=true.
func mountLossy(t *testing.T) *lossyfs.FS {
	t.Helper()
	fail := t.Skip
	if os.Getenv("CI") == "true" {
		fail = t.Fatal
	}
	if err := lossyfs.Available(); err != nil {
		fail(err)
	}
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	fsys, err := lossyfs.Mount(dir)
	if err != nil {
		fail(err)
	}
	t.Cleanup(func() { fsys.Close() })
	return fsys
}

// cutRun is what the service acknowledged about one run.
type cutRun struct {
	id       string
	client   string
	acked    uint64 // highest client seq acknowledged
	finished bool   // Finish was acknowledged
	// finishing is set once a Finish was sent: a cut can take its ack
	// while its exit record is already durable, so the run may be
	// finished without the worker having heard so.
	finishing bool
	busy      bool // a worker is using it
}

// cutRecord is the record with client sequence cs of a run: a history row
// whose bytes follow from cs, so what survives can be checked.
func cutRecord(client string, cs uint64) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&runlogv1.Record{
		ClientId:  client,
		ClientSeq: cs,
		Payload: &runlogv1.Record_History{History: &runlogv1.HistoryRow{Step: int64(cs), Items: []*runlogv1.Item{
			{Key: "loss", Value: &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: 1 / float64(cs)}}},
			{Key: "client", Value: &runlogv1.Value{Kind: &runlogv1.Value_StringValue{StringValue: client}}},
		}}},
	})
	if err != nil {
		panic(err)
	}
	return b
}

func powerCuts(t *testing.T, cuts int) {
	fsys := mountLossy(t)
	root := filepath.Join(fsys.Dir(), "root")
	hub := startHub(t)
	hc := hub.client(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 13))

	var (
		mu   sync.Mutex // protects runs, nextRun and every run's fields
		runs []*cutRun  // runs whose Init was acknowledged
	)
	nextRun := 0
	var acked, records int
	for cut := 1; cut <= cuts; cut++ {
		svc := startService(t, root, "--upstream", hub.URL, "--crash-grace", "1h")
		_, c := dialService(t, svc.port.Unix)
		checkCut(t, c, cut, runs)

		ctx, cancel := context.WithCancel(context.Background())
		failed := make(chan error, 3)
		var wg sync.WaitGroup
		for w := range 3 {
			wrng := rand.New(rand.NewPCG(rng.Uint64(), uint64(w)))
			wg.Go(func() {
				for ctx.Err() == nil {
					mu.Lock()
					var r *cutRun
					var idle []*cutRun
					for _, x := range runs {
						if !x.busy && !x.finished {
							idle = append(idle, x)
						}
					}
					if len(idle) == 0 || wrng.IntN(4) == 0 {
						nextRun++
						r = &cutRun{id: fmt.Sprintf("cut-%04d", nextRun), client: fmt.Sprintf("client-%04d", nextRun)}
					} else {
						r = idle[wrng.IntN(len(idle))]
					}
					r.busy = true
					mu.Unlock()
					err := cutSession(ctx, c, r, wrng, &mu, &runs)
					mu.Lock()
					r.busy = false
					mu.Unlock()
					if err != nil && !isDeath(err) {
						failed <- err
					}
				}
			})
		}
		time.Sleep(time.Duration(30+rng.IntN(300)) * time.Millisecond) // the cut's random moment
		svc.kill()
		cancel()
		wg.Wait()
		select {
		case err := <-failed:
			t.Fatalf("before cut %d: %v", cut, err)
		default:
		}
		if err := fsys.PowerCut(); err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
	}

	// After the last cut: every log opens, holds what was acknowledged, and
	// the hub converges on exactly the logs' records.
	svc := startService(t, root, "--upstream", hub.URL, "--crash-grace", "1h")
	_, c := dialService(t, svc.port.Unix)
	counts := checkCut(t, c, cuts+1, runs)
	for _, r := range runs {
		n := counts[r.id]
		waitHub(t, hc, r.id, fmt.Sprintf("%d records", n), func(g *runlogv1.GetRunResponse) bool {
			return g.GetRun().GetHighWater() == n
		})
		acked += int(r.acked)
		records += int(n)
	}
	svc.stop()
	for _, r := range runs {
		checkHubHolds(t, hc, r.id, runPath(root, r.id))
	}
	st := fsys.Stats()
	t.Logf("%d cuts, %d runs, %d records acknowledged, %d in the logs; %d file fsyncs, %d directory fsyncs",
		cuts, len(runs), acked, records, st.FileSyncs, st.DirSyncs)
	if acked == 0 {
		t.Fatal("no record was acknowledged: the test proves nothing")
	}
}

// cutSession attaches to run r (creating it on first use), publishes records
// until ctx ends or the service dies, and sometimes finishes the run. It
// records in r what the service acknowledged, under mu, and adds r to runs
// once its Init was acknowledged.
func cutSession(ctx context.Context, c runlogv1.RunlogClient, r *cutRun, rng *rand.Rand, mu *sync.Mutex, runs *[]*cutRun) error {
	init, err := c.Init(ctx, &runlogv1.InitRequest{
		RunId: r.id, Resume: runlogv1.ResumeMode_RESUME_MODE_ALLOW, ClientId: r.client,
		ClientPid: int64(os.Getpid()), Info: &runlogv1.RunInfo{Project: "power-cut"},
	})
	if err != nil {
		mu.Lock()
		defer mu.Unlock()
		if r.finishing && status.Code(err) == codes.FailedPrecondition && strings.Contains(status.Convert(err).Message(), "is finished") {
			// Its Finish reached the log before the cut took the ack.
			r.finished = true
			return nil
		}
		return err
	}
	mu.Lock()
	if init.AckedClientSeq < r.acked {
		mu.Unlock()
		return fmt.Errorf("run %s: the service holds client seq %d, %d was acknowledged", r.id, init.AckedClientSeq, r.acked)
	}
	if !slices.Contains(*runs, r) {
		*runs = append(*runs, r)
	}
	mu.Unlock()

	stream, err := c.Publish(ctx)
	if err != nil {
		return err
	}
	next := init.AckedClientSeq + 1
	batches := 1 + rng.IntN(20)
	for b := 1; b <= batches; b++ {
		req := &runlogv1.PublishRequest{RunId: r.id, ClientId: r.client, Batch: uint64(b)}
		for range 1 + rng.IntN(100) {
			req.Records = append(req.Records, cutRecord(r.client, next))
			next++
		}
		if err := stream.Send(req); err != nil {
			return err
		}
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		if resp.Error != nil || len(resp.Rejections) > 0 {
			return fmt.Errorf("run %s: batch refused: %v %v", r.id, resp.Error, resp.Rejections)
		}
		mu.Lock()
		r.acked = max(r.acked, resp.AckedClientSeq)
		mu.Unlock()
	}
	stream.CloseSend()
	if rng.IntN(5) == 0 {
		mu.Lock()
		r.finishing = true
		mu.Unlock()
		if _, err := c.Finish(ctx, &runlogv1.FinishRequest{RunId: r.id, ClientId: r.client, Exit: &runlogv1.Exit{}}); err != nil {
			return err
		}
		mu.Lock()
		r.finished = true
		mu.Unlock()
	}
	return nil
}

// checkCut checks, after a restart, that every acknowledged run opens and
// holds its acknowledged records with their bytes, gap-free, and that a
// finished run ends with its exit. It returns each run's record count.
func checkCut(t *testing.T, c runlogv1.RunlogClient, cut int, runs []*cutRun) map[string]uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, err := c.ListRuns(ctx, &runlogv1.ListRunsRequest{})
	if err != nil {
		t.Fatalf("after cut %d: list runs: %v", cut, err)
	}
	listed := map[string]bool{}
	for _, s := range list.Runs {
		listed[s.RunId] = true
	}
	counts := map[string]uint64{}
	for _, r := range runs {
		if !listed[r.id] {
			t.Fatalf("after cut %d: acknowledged run %s is gone", cut, r.id)
		}
		stream, err := c.Read(ctx, &runlogv1.ReadRequest{RunId: r.id})
		if err != nil {
			t.Fatalf("after cut %d: read %s: %v", cut, r.id, err)
		}
		var seq, cs uint64
		var last *runlogv1.Record
		for {
			resp, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("after cut %d: read %s: %v", cut, r.id, err)
			}
			for _, rec := range resp.Records {
				seq++
				last = rec
				if rec.Seq != seq {
					t.Fatalf("after cut %d: run %s: record %d has seq %d", cut, r.id, seq, rec.Seq)
				}
				if rec.ClientSeq == 0 {
					continue
				}
				cs++
				if rec.ClientSeq != cs {
					t.Fatalf("after cut %d: run %s: seq %d holds client seq %d, want %d", cut, r.id, rec.Seq, rec.ClientSeq, cs)
				}
				got := proto.Clone(rec).(*runlogv1.Record)
				got.Seq, got.Id, got.TimeUnixNano = 0, nil, 0
				b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(got)
				if string(b) != string(cutRecord(r.client, cs)) {
					t.Fatalf("after cut %d: run %s: seq %d: bytes differ from what was sent", cut, r.id, rec.Seq)
				}
			}
		}
		if cs < r.acked {
			t.Fatalf("after cut %d: run %s holds client seqs 1..%d, %d was acknowledged", cut, r.id, cs, r.acked)
		}
		if r.finished && last.GetExit() == nil {
			t.Fatalf("after cut %d: run %s: Finish was acknowledged, the log ends at seq %d without an exit", cut, r.id, seq)
		}
		counts[r.id] = seq
	}
	return counts
}

// isDeath reports whether err is what a client sees when the service is
// killed under it (or the test cancelled the call for the cut), as opposed
// to a refusal from a live service.
func isDeath(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.Canceled:
		return true
	}
	return false
}

package main

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/runlog/runlog/client"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/store/pgtest"
)

// startPGHub starts a hub on a free loopback port over the database at url.
func startPGHub(t testing.TB, url string, extra ...string) *hubProc {
	t.Helper()
	h := &hubProc{store: url, args: extra}
	h.launch(t, "127.0.0.1:0")
	return h
}

// pgHubs starts a throwaway cluster and two hubs over one database in it.
func pgHubs(t *testing.T) (*pgtest.Cluster, [2]*hubProc) {
	t.Helper()
	cl := pgtest.New(t)
	url, err := cl.CreateDB(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cl, [2]*hubProc{startPGHub(t, url), startPGHub(t, url)}
}

// logUntil logs rows of 10 keys as fast as the client takes them until stop
// is closed, then flushes and finishes the run.
func logUntil(r *client.Run, stop <-chan struct{}) error {
	vals := make([]float64, len(metricKeys))
	for i := 0; ; i++ {
		select {
		case <-stop:
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := r.Flush(ctx); err != nil {
				return err
			}
			return r.Finish(ctx, 0)
		default:
		}
		for k := range vals {
			vals[k] = float64(i) * float64(k+1)
		}
		if err := r.LogFloats(int64(i), metricKeys, vals); err != nil {
			return err
		}
	}
}

// hubMark is the database's mark of a run, asked through hub c until it
// answers.
func hubMark(t *testing.T, c runlogv1.HubClient, id string) uint64 {
	t.Helper()
	r := waitHub(t, c, id, "an answer", func(*runlogv1.GetRunResponse) bool { return true })
	return r.GetRun().GetHighWater()
}

// countFromEnv returns n, or soak under RUNLOG_SOAK, or the number in env.
func countFromEnv(env string, n, soak int) int {
	if os.Getenv("RUNLOG_SOAK") != "" {
		n = soak
	}
	if v, err := strconv.Atoi(os.Getenv(env)); err == nil && v > 0 {
		n = v
	}
	return n
}

// failoverRun logs a run through a service whose upstream is both hubs and
// calls disrupt between moments of progress; at the end the database holds
// exactly the run's log.
func failoverRun(t *testing.T, hubs [2]*hubProc, rounds int, disrupt func(round int, rng *rand.Rand)) {
	root := t.TempDir()
	upstream := "grpc://" + hubs[0].addr + "," + hubs[1].addr
	startService(t, root, "--upstream", upstream)
	c := connect(t, root)
	run, err := c.Init(context.Background(), client.RunOptions{ID: "failover", Project: "pg"})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var (
		wg     sync.WaitGroup
		logErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		logErr = logUntil(run, stop)
	}()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 12))
	for round := range rounds {
		disrupt(round, rng)
	}
	close(stop)
	wg.Wait()
	if logErr != nil {
		t.Fatalf("logging: %v", logErr)
	}
	r := checkSyncedFinished(t, hubs[0].client(t), root, "failover")
	t.Logf("%d records synced through %d disruptions", r.GetRun().GetHighWater(), rounds)
}

// TestHubsOnPostgresSurviveSIGKILL kills the hub the service syncs through,
// alternating between two hubs over one database, each time once the run
// moved on, and restarts it after the sender moved to the other hub.
// pick_first keeps a sender on its hub until that one goes away, so the
// hubs killed alternate with the hub in use.
func TestHubsOnPostgresSurviveSIGKILL(t *testing.T) {
	kills := countFromEnv("RUNLOG_PG_KILLS", 6, 20)
	_, hubs := pgHubs(t)
	clients := [2]runlogv1.HubClient{hubs[0].client(t), hubs[1].client(t)}
	failoverRun(t, hubs, kills, func(round int, rng *rand.Rand) {
		victim, other := hubs[round%2], clients[(round+1)%2]
		before := hubMark(t, other, "failover")
		waitHub(t, other, "failover", "progress before the kill", func(r *runlogv1.GetRunResponse) bool {
			return r.GetRun().GetHighWater() > before
		})
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond) // a random moment, not a synchronisation
		victim.kill()
		at := hubMark(t, other, "failover")
		// The sender moves to the other hub while this one is down.
		waitHub(t, other, "failover", "progress through the other hub", func(r *runlogv1.GetRunResponse) bool {
			return r.GetRun().GetHighWater() > at
		})
		victim.restart(t)
	})
}

// TestHubsOnPostgresSurviveDatabaseRestart restarts PostgreSQL as a crash
// would (pg_ctl restart -m immediate) while two hubs ingest: the hubs answer
// UNAVAILABLE meanwhile, the sender backs off and resumes, nothing is lost.
func TestHubsOnPostgresSurviveDatabaseRestart(t *testing.T) {
	restarts := countFromEnv("RUNLOG_PG_RESTARTS", 3, 3)
	cl, hubs := pgHubs(t)
	hc := hubs[0].client(t)
	failoverRun(t, hubs, restarts, func(round int, rng *rand.Rand) {
		before := hubMark(t, hc, "failover")
		waitHub(t, hc, "failover", "progress before the restart", func(r *runlogv1.GetRunResponse) bool {
			return r.GetRun().GetHighWater() > before
		})
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond) // a random moment
		if err := cl.Restart("immediate"); err != nil {
			t.Fatal(err)
		}
		at := hubMark(t, hc, "failover")
		waitHub(t, hc, "failover", "progress after the restart", func(r *runlogv1.GetRunResponse) bool {
			return r.GetRun().GetHighWater() > at
		})
	})
}

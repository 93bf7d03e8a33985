package main

// End-to-end tests of upstream sync with real processes on loopback: a
// `runlog service` with --upstream, a `runlog hub`, clients logging through
// the Go client, SIGKILL and restarts. Each ends by comparing the hub's copy
// of a run with the run's log: the same count and the same digest.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/runlog/runlog/client"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/root"
	"github.com/runlog/runlog/sender"
	"github.com/runlog/runlog/wal"
)

// connect attaches a client to the service on root.
func connect(t *testing.T, root string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, client.Options{Root: root, Address: "unix://" + client.SocketPath(root), NoStart: true})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var metricKeys = []string{"loss", "acc", "lr", "m3", "m4", "m5", "m6", "m7", "m8", "m9"}

// logRows logs n history rows of 10 keys from step from and flushes.
func logRows(t *testing.T, r *client.Run, from, n int) {
	t.Helper()
	vals := make([]float64, len(metricKeys))
	for i := from; i < from+n; i++ {
		for k := range vals {
			vals[k] = float64(i) * float64(k+1)
		}
		if err := r.LogFloats(int64(i), metricKeys, vals); err != nil {
			t.Fatalf("log step %d: %v", i, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := r.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
}

func finish(t *testing.T, r *client.Run) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Finish(ctx, 0); err != nil {
		t.Fatalf("finish: %v", err)
	}
}

// runPath is where the service keeps a run's log.
func runPath(dir, id string) string { return root.Dir(dir).Log(id) }

// rootAt is the layout of the root at dir.
func rootAt(dir string) root.Dir { return root.Dir(dir) }

// waitClosed waits until no process holds the run's log (the service closes
// a run once it is finished and its senders are done), so it can be read.
func waitClosed(t *testing.T, root, id string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		l, err := wal.Open(runPath(root, id), wal.Options{ReadOnly: true, LockTimeout: 50 * time.Millisecond})
		if err == nil {
			l.Close()
			return
		}
		if !errors.Is(err, wal.ErrLocked) || time.Now().After(deadline) {
			t.Fatalf("run %s log: %v", id, err)
		}
	}
}

// checkSyncedFinished waits until the hub shows run id finished and the
// service on root let go of its log, then checks that the hub holds exactly
// the log's records.
func checkSyncedFinished(t *testing.T, hc runlogv1.HubClient, root, id string) *runlogv1.GetRunResponse {
	t.Helper()
	waitHub(t, hc, id, "finished", func(r *runlogv1.GetRunResponse) bool {
		return r.GetState().GetStatus() == runlogv1.RunStatus_RUN_STATUS_FINISHED
	})
	waitClosed(t, root, id)
	return checkHubHolds(t, hc, id, runPath(root, id))
}

// syncErrorOf asks the service for a run's last sync error to url.
func syncErrorOf(t *testing.T, c *client.Client, id, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	runs, err := c.ListRuns(ctx)
	if err != nil {
		t.Fatalf("list runs: %v", err)
	}
	for _, r := range runs {
		if r.GetRunId() == id {
			return r.GetSyncErrors()[url]
		}
	}
	return ""
}

func TestServiceSyncsAfterHubComesBack(t *testing.T) {
	h := startHub(t)
	hc := h.client(t)
	h.stop()
	root := t.TempDir()
	startService(t, root, "--upstream", h.URL)
	c := connect(t, root)
	ctx := context.Background()
	run, err := c.Init(ctx, client.RunOptions{ID: "down", Project: "p", Config: map[string]any{"lr": 0.1}})
	if err != nil {
		t.Fatal(err)
	}
	// Records are acknowledged while the hub is down.
	logRows(t, run, 0, 20_000)
	deadline := time.Now().Add(30 * time.Second)
	for syncErrorOf(t, c, "down", h.URL) == "" {
		if time.Now().After(deadline) {
			t.Fatal("no sync error reported while the hub is down")
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.restart(t)
	logRows(t, run, 20_000, 1000)
	finish(t, run)
	got := checkSyncedFinished(t, hc, root, "down")
	if got.GetState().GetHistoryRows() != 21_000 {
		t.Fatalf("hub state: %d history rows, want 21000", got.GetState().GetHistoryRows())
	}
	if e := syncErrorOf(t, c, "down", h.URL); e != "" {
		t.Fatalf("sync error left after the hub came back: %s", e)
	}
}

// backlog logs a finished run of n rows while the hub is down, so that the
// service has a backlog to sync when it comes up.
func backlog(t *testing.T, root, id string, n int) {
	t.Helper()
	c := connect(t, root)
	run, err := c.Init(context.Background(), client.RunOptions{ID: id, Project: "p"})
	if err != nil {
		t.Fatal(err)
	}
	logRows(t, run, 0, n)
	finish(t, run)
	c.Close()
}

// TestServiceKilledMidSync SIGKILLs the service while the hub holds part of
// a run: a proxy between them passes the first 4 MiB of the sync and then
// holds the rest, so the kill cannot come after the sync finished. The
// service started again must bring the hub to exactly the run's records.
func TestServiceKilledMidSync(t *testing.T) {
	h := startHub(t)
	hc := h.client(t)
	h.stop()
	p := startHoldingProxy(t, h.addr, 4<<20)
	root := t.TempDir()
	svc := startService(t, root, "--upstream", p.URL)
	const rows = 300_000
	backlog(t, root, "big", rows)

	h.restart(t)
	waitHub(t, hc, "big", "some records", func(r *runlogv1.GetRunResponse) bool { return r.GetRun().GetHighWater() > 0 })
	svc.kill()
	// Nothing reaches the hub while the proxy holds: what it holds now is
	// what it held at the kill, and the killed service's cursor is where
	// the service knew the sync to be.
	hw := hubRun(t, hc, "big").GetRun().GetHighWater()
	l, err := wal.Open(runPath(root, "big"), wal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	last := l.LastSeq()
	cursor, _ := l.Cursor(sender.CursorName(p.URL))
	l.Close()
	if hw >= last || cursor >= last {
		t.Fatalf("the kill came after the sync: the hub held %d records, the service's cursor was at %d, of %d", hw, cursor, last)
	}
	t.Logf("killed with the hub holding %d of %d records, the service's cursor at %d", hw, last, cursor)

	p.open()
	svc.launch(t)
	checkSyncedFinished(t, hc, root, "big")
}

// holdingProxy forwards TCP connections from loopback to a hub, letting at
// most a budget of bytes through towards the hub, then holding every
// connection open without passing more: a hub that stops hearing its
// sender mid-stream. open lifts the hold: it drops the held connections
// and lets new ones through unlimited.
type holdingProxy struct {
	URL string
	hub string
	lis net.Listener
	wg  sync.WaitGroup // the goroutines of each connection

	mu     sync.Mutex // protects budget, conns and closed
	budget int        // bytes still to pass towards the hub; -1 is no limit
	conns  map[*proxyConn]struct{}
	closed bool
}

type proxyConn struct {
	client, hub net.Conn
	gone        chan struct{} // closed by close
	once        sync.Once
}

func (c *proxyConn) close() {
	c.once.Do(func() {
		close(c.gone)
		c.client.Close()
		c.hub.Close()
	})
}

func startHoldingProxy(t *testing.T, hub string, budget int) *holdingProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdingProxy{URL: "grpc://" + lis.Addr().String(), hub: hub, lis: lis, budget: budget, conns: map[*proxyConn]struct{}{}}
	accepting := make(chan struct{})
	go func() {
		defer close(accepting)
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			p.serve(c)
		}
	}()
	t.Cleanup(func() {
		lis.Close()
		<-accepting
		p.mu.Lock()
		p.closed = true
		conns := p.conns
		p.conns = nil
		p.mu.Unlock()
		for c := range conns {
			c.close()
		}
		p.wg.Wait()
	})
	return p
}

// serve connects client to the hub; a hub that is down closes client.
func (p *holdingProxy) serve(client net.Conn) {
	hub, err := net.Dial("tcp", p.hub)
	if err != nil {
		client.Close()
		return
	}
	c := &proxyConn{client: client, hub: hub, gone: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.close()
		return
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		io.Copy(client, hub)
		c.close()
	}()
	go func() {
		defer p.wg.Done()
		defer c.close()
		buf := make([]byte, 32<<10)
		for {
			n, err := client.Read(buf)
			for b := buf[:n]; len(b) > 0; {
				k := p.allow(c, len(b))
				if k == 0 {
					return
				}
				if _, err := hub.Write(b[:k]); err != nil {
					return
				}
				b = b[k:]
			}
			if err != nil {
				return
			}
		}
	}()
}

// allow returns how many of want bytes may pass now, waiting while the
// budget is spent; 0 once c is closed.
func (p *holdingProxy) allow(c *proxyConn, want int) int {
	p.mu.Lock()
	switch {
	case p.budget < 0:
		p.mu.Unlock()
		return want
	case p.budget > 0:
		k := min(want, p.budget)
		p.budget -= k
		p.mu.Unlock()
		return k
	}
	p.mu.Unlock()
	<-c.gone // only open and cleanup end a hold, by closing c
	return 0
}

// open lifts the hold: held connections are dropped (what they held is
// lost, as in a network partition), new ones pass without limit.
func (p *holdingProxy) open() {
	p.mu.Lock()
	p.budget = -1
	conns := p.conns
	p.conns = map[*proxyConn]struct{}{}
	p.mu.Unlock()
	for c := range conns {
		c.close()
	}
}

func TestHubKilledWhileServiceSyncs(t *testing.T) {
	h := startHub(t)
	hc := h.client(t)
	h.stop()
	root := t.TempDir()
	startService(t, root, "--upstream", h.URL)
	const rows = 300_000
	backlog(t, root, "big", rows)

	h.restart(t)
	waitHub(t, hc, "big", "some records", func(r *runlogv1.GetRunResponse) bool { return r.GetRun().GetHighWater() > 0 })
	h.kill()
	h.restart(t)
	checkSyncedFinished(t, hc, root, "big")
}

// countingListener accepts TCP connections, counts them and closes them.
func countingListener(t *testing.T) (url string, accepted *atomic.Int64) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = new(atomic.Int64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conn.Close()
		}
	}()
	t.Cleanup(func() {
		lis.Close()
		<-done
	})
	return "grpc://" + lis.Addr().String(), accepted
}

// TestOfflineNeverConnects also checks that the service and the sender agree
// on where a run's sync mode is kept: the service writes an offline run's
// mode into its log and the sender's follower reads it there (Wants) to
// leave the run alone. Were the keys different, the offline run would be
// followed and this test would see it connect.
func TestOfflineNeverConnects(t *testing.T) {
	url, accepted := countingListener(t)

	// An offline run of an online service.
	root := t.TempDir()
	startService(t, root, "--upstream", url)
	c := connect(t, root)
	run, err := c.Init(context.Background(), client.RunOptions{ID: "off", Mode: runlogv1.SyncMode_SYNC_MODE_OFFLINE})
	if err != nil {
		t.Fatal(err)
	}
	logRows(t, run, 0, 100)
	finish(t, run)
	// The service closes the run at once: nothing follows it.
	waitClosed(t, root, "off")

	// Any run of an offline service. (--offline refuses --upstream, so
	// there is nothing it could connect to; check that it starts and keeps
	// runs local.)
	root2 := t.TempDir()
	startService(t, root2, "--offline")
	c2 := connect(t, root2)
	run2, err := c2.Init(context.Background(), client.RunOptions{ID: "on", Mode: runlogv1.SyncMode_SYNC_MODE_ONLINE})
	if err != nil {
		t.Fatal(err)
	}
	logRows(t, run2, 0, 100)
	finish(t, run2)
	waitClosed(t, root2, "on")
	if n := accepted.Load(); n != 0 {
		t.Fatalf("offline runs made %d connections upstream", n)
	}

	// The same upstream sees an online run of the online service connect,
	// so the count above could have caught a connection.
	run3, err := c.Init(context.Background(), client.RunOptions{ID: "on"})
	if err != nil {
		t.Fatal(err)
	}
	logRows(t, run3, 0, 10)
	deadline := time.Now().Add(30 * time.Second)
	for accepted.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("an online run never connected upstream")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWrongTokenStopsServiceSender(t *testing.T) {
	dir := t.TempDir()
	tok, wrong := filepath.Join(dir, "token"), filepath.Join(dir, "wrong")
	os.WriteFile(tok, []byte("right"), 0o600)
	os.WriteFile(wrong, []byte("wrong"), 0o600)
	h := startHub(t, "--token-file", tok)
	root := t.TempDir()
	svc := startService(t, root, "--upstream", h.URL, "--upstream-token-file", wrong)
	c := connect(t, root)
	run, err := c.Init(context.Background(), client.RunOptions{ID: "r"})
	if err != nil {
		t.Fatal(err)
	}
	logRows(t, run, 0, 100)
	deadline := time.Now().Add(30 * time.Second)
	var msg string
	for msg = syncErrorOf(t, c, "r", h.URL); msg == ""; msg = syncErrorOf(t, c, "r", h.URL) {
		if time.Now().After(deadline) {
			t.Fatal("no sync error for a refused token")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(msg, "Unauthenticated") {
		t.Fatalf("sync error %q does not say the token was refused", msg)
	}
	// No retry storm: nothing retries a refusal. The run's sender stops
	// for good (the service says so) and nothing starts another, however
	// many records come; once the hub has exited, its log is complete and
	// holds the one refusal.
	logRows(t, run, 100, 100)
	waitFor(t, svc.proc, "the service's sender of run r to stop", func() bool {
		return strings.Contains(svc.stderr.String(), `msg="follower stopped" run=r `)
	})
	h.stop()
	if n := strings.Count(h.stderr.String(), "call refused"); n != 1 {
		t.Fatalf("hub refused %d calls, want 1\n%s", n, h.stderr.String())
	}
}

// TestHelperLogger is not a test: run as a child process by
// TestCrashedClientShowsCrashedOnHub, it logs to a run, says "ready" and
// waits to be killed.
func TestHelperLogger(t *testing.T) {
	root := os.Getenv("RUNLOG_TEST_LOGGER_ROOT")
	if root == "" {
		t.Skip("helper process for TestCrashedClientShowsCrashedOnHub")
	}
	c := connect(t, root)
	run, err := c.Init(context.Background(), client.RunOptions{ID: os.Getenv("RUNLOG_TEST_LOGGER_RUN"), Project: "crash"})
	if err != nil {
		t.Fatal(err)
	}
	logRows(t, run, 0, 500)
	fmt.Println("ready")
	select {}
}

func TestCrashedClientShowsCrashedOnHub(t *testing.T) {
	h := startHub(t)
	hc := h.client(t)
	root := t.TempDir()
	startService(t, root, "--upstream", h.URL, "--crash-grace", "1s")

	child := exec.Command(os.Args[0], "-test.run=^TestHelperLogger$")
	child.Env = append(os.Environ(), "RUNLOG_TEST_LOGGER_ROOT="+root, "RUNLOG_TEST_LOGGER_RUN=doomed")
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("logger child said %q, %v", line, err)
	}
	waitHub(t, hc, "doomed", "running with records", func(r *runlogv1.GetRunResponse) bool {
		return r.GetRun().GetHistoryRows() == 500 && r.GetState().GetStatus() == runlogv1.RunStatus_RUN_STATUS_RUNNING
	})
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()

	got := waitHub(t, hc, "doomed", "crashed", func(r *runlogv1.GetRunResponse) bool {
		return r.GetState().GetStatus() == runlogv1.RunStatus_RUN_STATUS_CRASHED
	})
	if got.GetState().GetExit().GetReason() != runlogv1.ExitReason_EXIT_REASON_CRASHED {
		t.Fatalf("exit %v", got.GetState().GetExit())
	}
	waitClosed(t, root, "doomed")
	checkHubHolds(t, hc, "doomed", runPath(root, "doomed"))
	// The exit record was written by the service, and says so.
	l, err := wal.Open(runPath(root, "doomed"), wal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	last, err := l.Read(l.LastSeq(), 1, 0)
	if err != nil || len(last) != 1 || !last[0].GetSynthesized() || last[0].GetExit() == nil {
		t.Fatalf("last record %v, %v: want a synthesized exit", last, err)
	}
}

// TestSoakSyncCrashLoop kills the service or the hub at random moments while
// a run logs and syncs, many times over, then checks that the hub holds
// exactly the run's records. Run by `make soak` (RUNLOG_SOAK=1).
func TestSoakSyncCrashLoop(t *testing.T) {
	if os.Getenv("RUNLOG_SOAK") == "" {
		t.Skip("soak test: set RUNLOG_SOAK=1 (make soak)")
	}
	h := startHub(t)
	hc := h.client(t)
	root := t.TempDir()
	svc := startService(t, root, "--upstream", h.URL)
	c := connect(t, root)
	run, err := c.Init(context.Background(), client.RunOptions{ID: "soak", Project: "soak"})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	const rounds, rows = 30, 20_000
	for i := range rounds {
		logRows(t, run, i*rows, rows)
		switch rng.IntN(3) {
		case 0:
			svc.kill()
			svc.launch(t)
		case 1:
			h.kill()
			h.restart(t)
		}
		t.Logf("round %d: hub holds %d records", i, hubRun(t, hc, "soak").GetRun().GetHighWater())
	}
	finish(t, run)
	got := checkSyncedFinished(t, hc, root, "soak")
	if got.GetState().GetHistoryRows() != rounds*rows {
		t.Fatalf("hub state has %d history rows, want %d", got.GetState().GetHistoryRows(), rounds*rows)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/runlog/runlog/client"
	"github.com/runlog/runlog/mux/muxtest"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/sender/sendertest"
	"github.com/runlog/runlog/store/storetest"
	"github.com/runlog/runlog/wal"
	"github.com/runlog/runlog/wire"
)

var exitFinished = &runlogv1.Exit{Reason: runlogv1.ExitReason_EXIT_REASON_FINISHED}

// syncJSON mirrors runlog sync --json.
type syncJSON struct {
	Upstream string `json:"upstream"`
	Runs     []struct {
		RunID      string `json:"run_id"`
		Result     string `json:"result"`
		Sent       uint64 `json:"sent"`
		HighWater  uint64 `json:"high_water"`
		LastSeq    uint64 `json:"last_seq"`
		DamagedSeq uint64 `json:"damaged_seq"`
		Error      string `json:"error"`
		Through    bool   `json:"through_service"`
	} `json:"runs"`
	Total       int    `json:"total"`
	Synced      int    `json:"synced"`
	UpToDate    int    `json:"up_to_date"`
	Damaged     int    `json:"damaged"`
	Failed      int    `json:"failed"`
	Skipped     int    `json:"skipped"`
	RecordsSent uint64 `json:"records_sent"`
	OK          bool   `json:"ok"`
}

func syncJSONRun(t *testing.T, args ...string) (int, syncJSON, string) {
	t.Helper()
	code, stdout, stderr := runCmd(t, append([]string{"sync", "--json"}, args...)...)
	var rep syncJSON
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("sync --json output: %v\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	return code, rep, stderr
}

func TestSyncTwiceSendsNothingTheSecondTime(t *testing.T) {
	h := startHub(t)
	c := h.client(t)
	root := t.TempDir()
	paths := map[string]string{}
	for i, rows := range []int{3000, 1, 0} {
		id := fmt.Sprintf("run-%d", i)
		paths[id] = makeRun(t, root, id, storetest.Run{Project: "p", Rows: rows, Keys: 4, Exit: exitFinished})
	}
	var total uint64
	for _, p := range paths {
		_, n := logDigest(t, p)
		total += n
	}

	code, rep, stderr := syncJSONRun(t, "--root", root, "--upstream", h.URL, "--all")
	if code != 0 || !rep.OK || rep.Synced != 3 || rep.RecordsSent != total {
		t.Fatalf("first sync: exit %d, %+v\n%s", code, rep, stderr)
	}
	for id, p := range paths {
		checkHubHolds(t, c, id, p)
		// The cursor is kept beside the records.
		l, err := wal.Open(p, wal.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		cur, _ := l.Cursor("upstream:" + h.URL)
		if cur != l.LastSeq() {
			t.Errorf("run %s: cursor %d, want %d", id, cur, l.LastSeq())
		}
		l.Close()
	}

	code, rep, stderr = syncJSONRun(t, "--root", root, "--upstream", h.URL, "--all")
	if code != 0 || rep.UpToDate != 3 || rep.RecordsSent != 0 {
		t.Fatalf("second sync: exit %d, %+v", code, rep)
	}
	if !strings.Contains(stderr, "nothing to send") {
		t.Fatalf("second sync does not say it sent nothing:\n%s", stderr)
	}
	// Lines for people, too.
	code, stdout, _ := runCmd(t, "sync", "--root", root, "--upstream", h.URL, "run-0")
	if code != 0 || !strings.Contains(stdout, "run run-0: up to date") {
		t.Fatalf("text output: exit %d\n%s", code, stdout)
	}
}

func TestSyncDamagedRunSyncsPrefixAndOthers(t *testing.T) {
	h := startHub(t)
	c := h.client(t)
	root := t.TempDir()
	a := makeRun(t, root, "a", storetest.Run{Rows: 500, Keys: 2, Exit: exitFinished})
	b := makeRun(t, root, "b", storetest.Run{Rows: 500, Keys: 2, Exit: exitFinished})
	z := makeRun(t, root, "z", storetest.Run{Rows: 500, Keys: 2, Exit: exitFinished})
	damageRecord(t, b, 123)

	code, rep, stderr := syncJSONRun(t, "--root", root, "--upstream", h.URL, "--all")
	if code != 1 || rep.OK || rep.Damaged != 1 || rep.Synced != 2 {
		t.Fatalf("exit %d, %+v\n%s", code, rep, stderr)
	}
	for _, r := range rep.Runs {
		if r.RunID == "b" && (r.Result != "damaged" || r.DamagedSeq != 123 || r.HighWater != 122 || !strings.Contains(r.Error, "seq 123")) {
			t.Fatalf("damaged run reported as %+v", r)
		}
	}
	checkHubHolds(t, c, "a", a)
	checkHubHolds(t, c, "z", z)
	if r := hubRun(t, c, "b"); r.GetRun().GetHighWater() != 122 {
		t.Fatalf("hub holds %d records of the damaged run, want the 122 before the damage", r.GetRun().GetHighWater())
	}
	_, stdout, _ := runCmd(t, "sync", "--root", root, "--upstream", h.URL, "b")
	if !strings.Contains(stdout, "run b: damaged record at seq 123") {
		t.Fatalf("text output does not name the damaged record:\n%s", stdout)
	}
}

// damageRecord flips a byte of record seq in the log at path.
func damageRecord(t *testing.T, path string, seq uint64) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte("records"))
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], seq)
		v := append([]byte(nil), bk.Get(k[:])...)
		v[len(v)/2] ^= 0x5a
		return bk.Put(k[:], v)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSyncWrongTokenFailsWithoutRetrying(t *testing.T) {
	dir := t.TempDir()
	tokenFile, wrongFile := filepath.Join(dir, "token"), filepath.Join(dir, "wrong")
	os.WriteFile(tokenFile, []byte("open sesame\n"), 0o600)
	os.WriteFile(wrongFile, []byte("guess\n"), 0o600)
	h := startHub(t, "--token-file", tokenFile)
	root := t.TempDir()
	makeRun(t, root, "r", storetest.Run{Rows: 100, Keys: 2, Exit: exitFinished})

	code, rep, stderr := syncJSONRun(t, "--root", root, "--upstream", h.URL, "--token-file", wrongFile, "--retries", "50", "r")
	if code != 1 || rep.Failed != 1 || !strings.Contains(rep.Runs[0].Error, "Unauthenticated") ||
		!strings.Contains(rep.Runs[0].Error, "--token-file") {
		t.Fatalf("exit %d, %+v\n%s", code, rep, stderr)
	}
	// One refused call, not fifty: the hub logs each refusal. Its stderr
	// reaches the test through a pipe, so the line may still be on its way
	// (sync has exited: no more calls can come).
	refused := func() int { return strings.Count(h.stderr.String(), "call refused") }
	for deadline := time.Now().Add(10 * time.Second); refused() == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := refused(); n != 1 {
		t.Fatalf("hub refused %d calls, want 1\n%s", n, h.stderr.String())
	}
	code, rep, _ = syncJSONRun(t, "--root", root, "--upstream", h.URL, "--token-file", tokenFile, "r")
	if code != 0 || rep.Synced != 1 {
		t.Fatalf("right token: exit %d, %+v", code, rep)
	}
}

func TestSyncRefusesAnotherRunWithTheSameID(t *testing.T) {
	h := startHub(t)
	c := h.client(t)
	// Two machines each log a run they call "baseline".
	firstRoot, otherRoot := t.TempDir(), t.TempDir()
	firstPath := makeRun(t, firstRoot, "baseline", storetest.Run{Rows: 100, Keys: 2, Exit: exitFinished})
	makeRun(t, otherRoot, "baseline", storetest.Run{Rows: 500, Keys: 2, Exit: exitFinished})
	code, rep, stderr := syncJSONRun(t, "--root", firstRoot, "--upstream", h.URL, "baseline")
	if code != 0 || rep.Synced != 1 {
		t.Fatalf("first run: exit %d, %+v\n%s", code, rep, stderr)
	}
	_, mark := logDigest(t, firstPath)

	code, rep, stderr = syncJSONRun(t, "--root", otherRoot, "--upstream", h.URL, "--retries", "50", "baseline")
	if code != 1 || rep.Failed != 1 || rep.RecordsSent != 0 {
		t.Fatalf("other run: exit %d, %+v\n%s", code, rep, stderr)
	}
	for _, want := range []string{fmt.Sprintf("different record at seq %d", mark), "another run uses this run id", "another id"} {
		if !strings.Contains(rep.Runs[0].Error, want) {
			t.Fatalf("error %q does not say %q", rep.Runs[0].Error, want)
		}
	}
	checkHubHolds(t, c, "baseline", firstPath)
	// One refusal, not fifty: the hub logs each. Its stderr reaches the
	// test through a pipe, so the line may still be on its way (sync has
	// exited: no more calls can come).
	refused := func() int { return strings.Count(h.stderr.String(), "ingest refused") }
	for deadline := time.Now().Add(10 * time.Second); refused() == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := refused(); n != 1 {
		t.Fatalf("hub refused %d ingests, want 1\n%s", n, h.stderr.String())
	}
}

func TestSyncSkipsRunHeldByAnotherProcess(t *testing.T) {
	h := startHub(t)
	root := t.TempDir()
	held := makeRun(t, root, "held", storetest.Run{Rows: 10, Keys: 1})
	makeRun(t, root, "free", storetest.Run{Rows: 10, Keys: 1, Exit: exitFinished})
	l, err := wal.Open(held, wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	os.WriteFile(rootAt(root).Lock(), []byte(fmt.Sprintf(`{"pid":%d}`, os.Getpid())), 0o600)

	code, rep, _ := syncJSONRun(t, "--root", root, "--upstream", h.URL, "--all")
	if code != 0 || rep.Skipped != 1 || rep.Synced != 1 {
		t.Fatalf("exit %d, %+v", code, rep)
	}
	for _, r := range rep.Runs {
		if r.RunID == "held" && (r.Result != "skipped" || !strings.Contains(r.Error, fmt.Sprintf("pid %d", os.Getpid()))) {
			t.Fatalf("held run: %+v", r)
		}
	}
}

func TestSyncUnknownRunAndBadURL(t *testing.T) {
	h := startHub(t)
	root := t.TempDir()
	code, rep, _ := syncJSONRun(t, "--root", root, "--upstream", h.URL, "nope")
	if code != 1 || rep.Failed != 1 || !strings.Contains(rep.Runs[0].Error, "no run nope") {
		t.Fatalf("unknown run: exit %d, %+v", code, rep)
	}
	if code, _, stderr := runCmd(t, "sync", "--root", root, "--upstream", "http://x:1", "--all"); code != 2 || !strings.Contains(stderr, "grpc://HOST:PORT") {
		t.Fatalf("bad URL: exit %d\n%s", code, stderr)
	}
}

func TestSyncArguments(t *testing.T) {
	h := startHub(t)
	root := t.TempDir()
	makeRun(t, root, "a", storetest.Run{Rows: 10, Keys: 1, Exit: exitFinished})
	makeRun(t, root, "b", storetest.Run{Rows: 10, Keys: 1, Exit: exitFinished})
	// Flags may follow the run ids; "--" ends them.
	code, stdout, stderr := runCmd(t, "sync", "--root", root, "a", "--upstream", h.URL, "--json", "--", "b")
	var rep syncJSON
	if code != 0 || json.Unmarshal([]byte(stdout), &rep) != nil || rep.Total != 2 || rep.Synced != 2 {
		t.Fatalf("flags after run ids: exit %d\n%s%s", code, stdout, stderr)
	}
	// A mistyped root is an error, not a sync of no runs.
	missing := filepath.Join(root, "nope")
	if code, _, stderr := runCmd(t, "sync", "--root", missing, "--upstream", h.URL, "--all"); code != 1 || !strings.Contains(stderr, "no runs under "+missing) {
		t.Fatalf("missing root: exit %d\n%s", code, stderr)
	}
	// Zero attempts would retry forever on some paths and once on others.
	if code, _, stderr := runCmd(t, "sync", "--root", root, "--upstream", h.URL, "--retries", "0", "--all"); code != 2 || !strings.Contains(stderr, "--retries 0") {
		t.Fatalf("--retries 0: exit %d\n%s", code, stderr)
	}
}

func TestSyncSurvivesHubKilledMidBatch(t *testing.T) {
	h := startHub(t)
	c := h.client(t)
	root := t.TempDir()
	path := makeRun(t, root, "big", storetest.Run{Rows: 150_000, Keys: 10, Exit: exitFinished})

	s := start(t, "sync", "--root", root, "--upstream", h.URL, "--retries", "20", "--json", "big")
	// Kill the hub once it holds part of the run: batches are in flight.
	waitHub(t, c, "big", "some records", func(r *runlogv1.GetRunResponse) bool { return r.GetRun().GetHighWater() > 10_000 })
	h.kill()
	h.restart(t)
	<-s.done
	if s.err != nil {
		t.Fatalf("sync after the hub restarted: %v\n%s", s.err, s.stderr.String())
	}
	checkHubHolds(t, c, "big", path)
}

func TestSyncOverTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := sendertest.SelfSigned(t, dir)
	h := startHub(t, "--tls-cert", cert, "--tls-key", key)
	if !strings.HasPrefix(h.URL, "grpcs://") {
		t.Fatalf("hub URL %s", h.URL)
	}
	root := t.TempDir()
	makeRun(t, root, "r", storetest.Run{Rows: 100, Keys: 2, Exit: exitFinished})
	code, rep, stderr := syncJSONRun(t, "--root", root, "--upstream", h.URL, "--ca-file", cert, "--all")
	if code != 0 || rep.Synced != 1 || rep.RecordsSent == 0 {
		t.Fatalf("exit %d, %+v\n%s", code, rep, stderr)
	}
	// Without trusting the certificate the run fails, and says why.
	code, rep, _ = syncJSONRun(t, "--root", root, "--upstream", h.URL, "--retries", "1", "--all")
	if code != 1 || !strings.Contains(rep.Runs[0].Error, "certificate") || !strings.Contains(rep.Runs[0].Error, "--ca-file") {
		t.Fatalf("untrusted certificate: exit %d, %+v", code, rep)
	}
	// Plaintext to the TLS hub: the error suggests grpcs://.
	plain := "grpc://" + strings.TrimPrefix(h.URL, "grpcs://")
	code, rep, _ = syncJSONRun(t, "--root", root, "--upstream", plain, "--retries", "1", "--all")
	if code != 1 || !strings.Contains(rep.Runs[0].Error, "use "+h.URL) {
		t.Fatalf("grpc:// to a TLS hub: exit %d, %+v", code, rep)
	}
}

func TestSyncExplainsTLSAndUnreachableHub(t *testing.T) {
	h := startHub(t)
	root := t.TempDir()
	makeRun(t, root, "r", storetest.Run{Rows: 10, Keys: 1, Exit: exitFinished})
	// TLS to a plaintext hub: the error suggests grpc://.
	secure := "grpcs://" + strings.TrimPrefix(h.URL, "grpc://")
	code, rep, _ := syncJSONRun(t, "--root", root, "--upstream", secure, "--retries", "1", "--all")
	if code != 1 || !strings.Contains(rep.Runs[0].Error, "does not speak TLS: use "+h.URL) {
		t.Fatalf("grpcs:// to a plaintext hub: exit %d, %+v", code, rep)
	}
	// Nothing listening: the error asks whether the hub runs.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	code, rep, _ = syncJSONRun(t, "--root", root, "--upstream", "grpc://"+addr, "--retries", "1", "--all")
	if code != 1 || !strings.Contains(rep.Runs[0].Error, "nothing listens at "+addr) {
		t.Fatalf("no hub: exit %d, %+v", code, rep)
	}
	// Queries say the same.
	code, _, stderr := runCmd(t, "show", "r", "--hub", secure)
	if code != 1 || !strings.Contains(stderr, "does not speak TLS") {
		t.Fatalf("show over grpcs:// to a plaintext hub: exit %d\n%s", code, stderr)
	}
}

// itemsFirstHistory is a history record whose row holds its items before its
// step: valid protobuf an encoder never writes, so decoding it and encoding
// it again changes its bytes, and the hub's digest would tell.
func itemsFirstHistory(t *testing.T, clientSeq uint64, step int64) []byte {
	t.Helper()
	item, err := proto.Marshal(&runlogv1.Item{Key: "metric/0", Value: &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	row := protowire.AppendBytes(protowire.AppendTag(nil, wire.HistoryItems, protowire.BytesType), item)
	row = protowire.AppendVarint(protowire.AppendTag(row, wire.HistoryStep, protowire.VarintType), uint64(step))
	rec := muxtest.Encode(t, &runlogv1.Record{ClientSeq: clientSeq})
	return protowire.AppendBytes(protowire.AppendTag(rec, wire.RecordHistory, protowire.BytesType), row)
}

// TestSyncRunHeldByService syncs a run that a running service holds open
// (an offline run, so the service sends it nowhere itself) beside a closed
// run: the held one goes through the service with its bytes as stored, a
// second sync sends nothing, and once the run is finished and closed the
// hub's digest equals the log's.
func TestSyncRunHeldByService(t *testing.T) {
	h := startHub(t)
	hc := h.client(t)
	root := t.TempDir()
	free := makeRun(t, root, "free", storetest.Run{Rows: 100, Keys: 2, Exit: exitFinished})
	svc := startService(t, root, "--offline")
	_, c := dialService(t, svc.port.Unix)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ir, err := c.Init(ctx, &runlogv1.InitRequest{RunId: "held", ClientPid: int64(os.Getpid()), Info: &runlogv1.RunInfo{Project: "p"}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Publish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.CloseSend()
	const rows = 6000 // several read chunks and hub batches
	publishBatch(t, st, "held", ir.ClientId, 1, muxtest.HistoryBatch(t, 1, 0, rows/2, 3))
	publishBatch(t, st, "held", ir.ClientId, 2, [][]byte{itemsFirstHistory(t, rows/2+1, rows/2)})
	publishBatch(t, st, "held", ir.ClientId, 3, muxtest.HistoryBatch(t, rows/2+2, rows/2+1, rows/2, 3))
	const held = rows + 2 // with the run info

	code, rep, stderr := syncJSONRun(t, "--root", root, "--upstream", h.URL, "--all")
	if code != 0 || !rep.OK || rep.Synced != 2 || rep.Skipped != 0 {
		t.Fatalf("sync: exit %d, %+v\n%s", code, rep, stderr)
	}
	for _, r := range rep.Runs {
		switch r.RunID {
		case "held":
			if r.Result != "synced" || !r.Through || r.Sent != held || r.HighWater != held || r.LastSeq != held {
				t.Fatalf("held run: %+v, want %d records sent through the service", r, held)
			}
		case "free":
			if r.Result != "synced" || r.Through {
				t.Fatalf("closed run: %+v, want synced from its file", r)
			}
		}
	}
	checkHubHolds(t, hc, "free", free)

	code, rep, stderr = syncJSONRun(t, "--root", root, "--upstream", h.URL, "--all")
	if code != 0 || rep.UpToDate != 2 || rep.RecordsSent != 0 || !strings.Contains(stderr, "nothing to send") {
		t.Fatalf("second sync: exit %d, %+v\n%s", code, rep, stderr)
	}
	if code, stdout, _ := runCmd(t, "sync", "--root", root, "--upstream", h.URL, "held"); code != 0 || !strings.Contains(stdout, "run held: up to date") {
		t.Fatalf("text output: exit %d\n%s", code, stdout)
	}

	// The service lets go of the run once it is finished: the hub holds
	// records 1..held exactly as the file stores them.
	if _, err := c.Finish(ctx, &runlogv1.FinishRequest{RunId: "held", ClientId: ir.ClientId}); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, root, "held")
	l, err := wal.Open(runPath(root, "held"), wal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	d, n, err := storetest.LogDigest(l, held)
	l.Close()
	if err != nil || n != held {
		t.Fatalf("log digest: %d records, %v", n, err)
	}
	got := hubRun(t, hc, "held")
	if got.GetRun().GetHighWater() != held || !bytes.Equal(got.GetRun().GetDigest(), d) {
		t.Fatalf("hub holds %d records of the held run, digest match %v; want %d and the log's digest",
			got.GetRun().GetHighWater(), bytes.Equal(got.GetRun().GetDigest(), d), held)
	}
	// Synced from the file now: only the exit record is new, and the
	// cursor, which the service's copy could not move, catches up.
	code, rep, stderr = syncJSONRun(t, "--root", root, "--upstream", h.URL, "held")
	if code != 0 || rep.Runs[0].Through || rep.RecordsSent != 1 {
		t.Fatalf("sync of the closed run: exit %d, %+v\n%s", code, rep, stderr)
	}
	checkHubHolds(t, hc, "held", runPath(root, "held"))
	l, err = wal.Open(runPath(root, "held"), wal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if cur, _ := l.Cursor("upstream:" + h.URL); cur != held+1 {
		t.Fatalf("cursor %d after the sync from the file, want %d", cur, held+1)
	}
}

// TestSyncBesideTheServicesSender: the service syncs a run to the hub itself
// while runlog sync pushes the same run through it. Both may send the same
// records; the hub ends with each once.
func TestSyncBesideTheServicesSender(t *testing.T) {
	h := startHub(t)
	hc := h.client(t)
	root := t.TempDir()
	startService(t, root, "--upstream", h.URL)
	c := connect(t, root)
	run, err := c.Init(context.Background(), client.RunOptions{ID: "both", Project: "p"})
	if err != nil {
		t.Fatal(err)
	}
	logRows(t, run, 0, 20_000)
	code, rep, stderr := syncJSONRun(t, "--root", root, "--upstream", h.URL, "both")
	if code != 0 || !rep.OK || !rep.Runs[0].Through || rep.Runs[0].HighWater < rep.Runs[0].LastSeq || rep.Runs[0].LastSeq < 20_001 {
		t.Fatalf("sync beside the service: exit %d, %+v\n%s", code, rep, stderr)
	}
	logRows(t, run, 20_000, 1000)
	finish(t, run)
	checkSyncedFinished(t, hc, root, "both")
}

// TestSyncDamagedRunHeldByService: a damaged run that the service holds (it
// opens every run without an exit at start) syncs through the service up to
// the record before the damage, and is reported at that record.
func TestSyncDamagedRunHeldByService(t *testing.T) {
	h := startHub(t)
	hc := h.client(t)
	root := t.TempDir()
	path := makeRun(t, root, "torn", storetest.Run{Rows: 3000, Keys: 2})
	damageRecord(t, path, 2345)
	startService(t, root, "--offline", "--crash-grace", "1h")

	code, rep, stderr := syncJSONRun(t, "--root", root, "--upstream", h.URL, "--all")
	if code != 1 || rep.OK || rep.Damaged != 1 {
		t.Fatalf("exit %d, %+v\n%s", code, rep, stderr)
	}
	if r := rep.Runs[0]; !r.Through || r.DamagedSeq != 2345 || r.HighWater != 2344 || !strings.Contains(r.Error, "seq 2345") {
		t.Fatalf("damaged run reported as %+v", r)
	}
	if r := hubRun(t, hc, "torn"); r.GetRun().GetHighWater() != 2344 {
		t.Fatalf("hub holds %d records of the damaged run, want the 2344 before the damage", r.GetRun().GetHighWater())
	}
}

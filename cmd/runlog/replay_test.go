package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/runlog/runlog/mux"
	"github.com/runlog/runlog/mux/muxtest"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/replay"
	"github.com/runlog/runlog/replay/replaytest"
	"github.com/runlog/runlog/store"
	"github.com/runlog/runlog/wal"
	"github.com/runlog/runlog/wire"
)

// replayExample writes the example run under a new root and returns the root.
func replayExample(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	replaytest.WriteExample(t, replaytest.RunPath(root, replaytest.ExampleRunID))
	return root
}

// runReplay runs the command in-process and returns its output and status.
func runReplay(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = replayMain(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

// timing hides the durations and rates of --verify output.
var timing = regexp.MustCompile(`in [0-9.]+[µmn]?s \([0-9.]+[kM]? records/s\)`)

// replayGoldenCases are the golden outputs of the example run, in
// testdata/replay/NAME.golden.
var replayGoldenCases = []struct {
	name string
	args []string
}{
	{"text", nil},
	{"json", []string{"--json"}},
	{"filtered", []string{"--kind", "history,rewind", "--client", "host-a-2", "--from", "15", "--to", "19"}},
	{"time-range", []string{"--json", "--since", "2026-11-27T16:42:13.003Z", "--until", "2026-11-27T16:42:13.004Z"}},
	{"state", []string{"--state"}},
	{"state-json", []string{"--state", "--json"}},
	{"state-at", []string{"--state", "--at", "16"}},
	{"history-csv", []string{"--history", "--csv"}},
	{"history-keys-at", []string{"--history", "--csv", "--keys", "loss,val/loss", "--at", "18"}},
	{"history-json", []string{"--history", "--json", "--keys", "acc"}},
	{"verify", []string{"--verify"}},
}

func TestReplayGolden(t *testing.T) {
	root := replayExample(t)
	id := replaytest.ExampleRunID
	for _, c := range replayGoldenCases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{id}, c.args...)
			if c.name == "state-at" {
				// Flags may come before RUN.
				args = []string{"--state", "--at", "16", id}
			}
			out, errOut, code := runReplay(t, append(args, "--root", root)...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			out = timing.ReplaceAllString(out, "in T (R records/s)")
			golden := filepath.Join("testdata", "replay", c.name+".golden")
			if os.Getenv("RUNLOG_UPDATE_GOLDEN") != "" {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (RUNLOG_UPDATE_GOLDEN=1 writes it)", err)
			}
			if out != string(want) {
				t.Fatalf("output differs from %s:\n%s", golden, lineDiff(string(want), out))
			}
		})
	}
}

// lineDiff shows the first differing line.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range max(len(w), len(g)) {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return fmt.Sprintf("line %d\nwant %s\n got %s", i+1, a, b)
		}
	}
	return "(same lines)"
}

func TestReplayPathAndUsage(t *testing.T) {
	root := replayExample(t)
	path := replaytest.RunPath(root, replaytest.ExampleRunID)
	byID, _, _ := runReplay(t, replaytest.ExampleRunID, "--root", root, "--json")
	byPath, errOut, code := runReplay(t, path, "--json")
	if code != 0 || byPath != byID {
		t.Fatalf("reading by path: exit %d %s, output differs from reading by id", code, errOut)
	}
	for _, args := range [][]string{
		{},
		{"a", "b"},
		{"a", "--state", "--verify"},
		{"a", "--at", "3"},
		{"a", "--keys", "x"},
		{"a", "--state", "--kind", "history"},
		{"a", "--kind", "nonsense"},
		{"a", "--since", "yesterday"},
		{"a", "--from", "5", "--to", "4"},
		{"--verify", "--all", "a"},
	} {
		if _, errOut, code := runReplay(t, append(args, "--root", root)...); code != 2 || errOut == "" {
			t.Errorf("%v: exit %d stderr %q, want 2 and a message", args, code, errOut)
		}
	}
	_, errOut, code = runReplay(t, "missing-run", "--root", root)
	if code != 1 || !strings.Contains(errOut, "no run missing-run") {
		t.Fatalf("missing run: exit %d, %q", code, errOut)
	}
}

// TestReplayStateAt checks --state --at N for every N against the fold of
// the first N records and against the hub store's view of the same prefix.
func TestReplayStateAt(t *testing.T) {
	root := replayExample(t)
	id := replaytest.ExampleRunID
	l, err := wal.Open(replaytest.RunPath(root, id), wal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var (
		recs []*runlogv1.Record
		raw  [][]byte
	)
	err = l.Scan(1, func(seq uint64, data []byte) error {
		var r runlogv1.Record
		if err := proto.Unmarshal(data, &r); err != nil {
			return err
		}
		recs = append(recs, &r)
		raw = append(raw, append([]byte(nil), data...))
		return nil
	})
	l.Close()
	if err != nil {
		t.Fatal(err)
	}
	hub, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	ctx := context.Background()

	sawRewound := false
	for n := 1; n <= len(recs); n++ {
		want := replay.NewState(id)
		for _, r := range recs[:n] {
			want.Apply(r)
		}
		out, errOut, code := runReplay(t, id, "--root", root, "--state", "--json", "--at", fmt.Sprint(n))
		if code != 0 {
			t.Fatalf("--at %d: exit %d: %s", n, code, errOut)
		}
		if wantJSON := string(replay.AppendStateJSON(nil, want)) + "\n"; out != wantJSON {
			t.Fatalf("--at %d:\n got %s\nwant %s", n, out, wantJSON)
		}
		if _, err := hub.Append(ctx, id, raw[n-1:n]); err != nil {
			t.Fatalf("hub append %d: %v", n, err)
		}
		_, hubState, err := hub.Run(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(hubState, want.Proto()) {
			t.Fatalf("at %d the hub says\n%v\nthe fold says\n%v", n, hubState, want.Proto())
		}
		// The rewind at 14 drops steps 6 and 7 until they are logged again.
		if n == 14 && want.HistoryRows() == 6 && want.LastStep() == 6 {
			sawRewound = true
		}
	}
	if !sawRewound {
		t.Fatal("the state after the rewind did not drop the rewound rows")
	}
}

// seal stores r the way the log does: framed with its checksum.
func seal(r *runlogv1.Record) []byte {
	data, _ := proto.Marshal(r)
	return wire.AppendFrame(nil, data)
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// getRecord decodes the stored record at seq.
func getRecord(t *testing.T, b *bolt.Bucket, seq uint64) *runlogv1.Record {
	t.Helper()
	var r runlogv1.Record
	if err := proto.Unmarshal(b.Get(seqKey(seq))[4:], &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func TestReplayVerifyFindsDamage(t *testing.T) {
	cases := []struct {
		name     string
		damage   func(t *testing.T, tx *bolt.Tx)
		kind     string
		firstBad uint64 // 0: a problem of the file, not of a record
		lastGood uint64
	}{
		{"flipped byte", func(t *testing.T, tx *bolt.Tx) {
			b := tx.Bucket([]byte("records"))
			v := append([]byte(nil), b.Get(seqKey(7))...)
			v[len(v)-3] ^= 0x40
			b.Put(seqKey(7), v)
		}, "checksum", 7, 6},
		{"truncated value", func(t *testing.T, tx *bolt.Tx) {
			tx.Bucket([]byte("records")).Put(seqKey(12), []byte{1, 2})
		}, "checksum", 12, 11},
		{"damaged last record", func(t *testing.T, tx *bolt.Tx) {
			b := tx.Bucket([]byte("records"))
			v := append([]byte(nil), b.Get(seqKey(25))...)
			v[len(v)-1] ^= 0x40
			b.Put(seqKey(25), v)
		}, "checksum", 25, 24},
		{"undecodable record", func(t *testing.T, tx *bolt.Tx) {
			data := []byte{0x0a, 0xff, 0xff, 0xff}
			v := wire.AppendFrame(nil, data)
			tx.Bucket([]byte("records")).Put(seqKey(8), v)
		}, "decode", 8, 7},
		{"missing record", func(t *testing.T, tx *bolt.Tx) {
			tx.Bucket([]byte("records")).Delete(seqKey(10))
		}, "gap", 10, 9},
		{"missing first record", func(t *testing.T, tx *bolt.Tx) {
			tx.Bucket([]byte("records")).Delete(seqKey(1))
		}, "gap", 1, 0},
		{"seq mismatch", func(t *testing.T, tx *bolt.Tx) {
			b := tx.Bucket([]byte("records"))
			r := getRecord(t, b, 3)
			r.Seq = 33
			b.Put(seqKey(3), seal(r))
		}, "seq", 3, 2},
		{"ULID not increasing", func(t *testing.T, tx *bolt.Tx) {
			b := tx.Bucket([]byte("records"))
			r := getRecord(t, b, 5)
			r.Id = getRecord(t, b, 4).Id
			b.Put(seqKey(5), seal(r))
		}, "ulid", 5, 4},
		{"time going back", func(t *testing.T, tx *bolt.Tx) {
			b := tx.Bucket([]byte("records"))
			r := getRecord(t, b, 13)
			r.TimeUnixNano -= int64(time.Hour)
			b.Put(seqKey(13), seal(r))
		}, "time", 13, 12},
		{"cursor past the end", func(t *testing.T, tx *bolt.Tx) {
			tx.Bucket([]byte("cursors")).Put([]byte("upstream:test"), seqKey(99))
		}, "cursor", 0, 25},
		{"second exit", func(t *testing.T, tx *bolt.Tx) {
			b := tx.Bucket([]byte("records"))
			r := getRecord(t, b, 20)
			r.Payload = &runlogv1.Record_Exit{Exit: &runlogv1.Exit{Code: 1}}
			b.Put(seqKey(20), seal(r))
		}, "after-exit", 21, 20},
		{"record after exit", func(t *testing.T, tx *bolt.Tx) {
			b := tx.Bucket([]byte("records"))
			r := getRecord(t, b, 25)
			r.Seq++
			r.Id[15]++
			r.Payload = &runlogv1.Record_Summary{Summary: &runlogv1.SummaryUpdate{Remove: []string{"x"}}}
			b.Put(seqKey(26), seal(r))
		}, "after-exit", 26, 25},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := replayExample(t)
			path := replaytest.RunPath(root, replaytest.ExampleRunID)
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(tx *bolt.Tx) error { c.damage(t, tx); return nil })
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
			out, errOut, code := runReplay(t, replaytest.ExampleRunID, "--root", root, "--verify")
			if code != 1 {
				t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			first := c.kind + ": "
			if c.firstBad != 0 {
				first = fmt.Sprintf("seq %d: %s: ", c.firstBad, c.kind)
			}
			if !strings.HasPrefix(lines[0], first) {
				t.Fatalf("first problem %q, want it to start with %q", lines[0], first)
			}
			summary := lines[len(lines)-1]
			want := fmt.Sprintf("last good seq %d", c.lastGood)
			if c.firstBad != 0 {
				want = fmt.Sprintf("first bad seq %d, %s", c.firstBad, want)
			}
			if !strings.HasPrefix(summary, "checked ") || !strings.HasSuffix(summary, want) {
				t.Fatalf("summary %q, want it to end with %q", summary, want)
			}
			if c.kind == "checksum" {
				// Reading stops at the damaged record, after the ones before.
				out, errOut, code := runReplay(t, replaytest.ExampleRunID, "--root", root)
				if n := strings.Count(out, "\n"); code != 1 || uint64(n) != c.lastGood || !strings.Contains(errOut, fmt.Sprintf("seq %d", c.firstBad)) {
					t.Fatalf("read: exit %d, %d lines, stderr %q", code, n, errOut)
				}
			}
		})
	}
}

func TestReplayVerifyAll(t *testing.T) {
	root := replayExample(t)
	replaytest.WriteExample(t, replaytest.RunPath(root, "second"))
	damaged := replaytest.RunPath(root, "third")
	replaytest.WriteExample(t, damaged)
	db, err := bolt.Open(damaged, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("records")).Delete(seqKey(4)) })
	db.Close()

	out, errOut, code := runReplay(t, "--verify", "--all", "--root", root)
	if code != 1 {
		t.Fatalf("exit %d, want 1: %s%s", code, out, errOut)
	}
	for _, want := range []string{
		"run-example: clean, 25 records\n",
		"second: clean, 25 records\n",
		// The first bad seq is the missing one, as every reader says.
		"third: seq 4: gap: seq 4: found key 5 in its place\n",
		"third: 1 problems in 24 records, first bad seq 4, last good seq 3\n",
		"checked 3 runs, 74 records in ",
		": 2 clean, 1 with problems, 0 unreadable\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	os.Remove(damaged)
	if out, _, code := runReplay(t, "--verify", "--all", "--root", root); code != 0 {
		t.Fatalf("clean root: exit %d\n%s", code, out)
	}
}

// TestReplayHelperHoldsLock is not a test: it is the process that holds a
// run's log for TestReplayLockedNamesHolder.
func TestReplayHelperHoldsLock(t *testing.T) {
	path := os.Getenv("RUNLOG_REPLAY_HOLD")
	if path == "" {
		t.Skip("helper process only")
	}
	l, err := wal.Open(path, wal.Options{})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	defer l.Close()
	fmt.Println("holding")
	// Hold until the parent closes stdin.
	io.Copy(io.Discard, os.Stdin)
}

func TestReplayLockedNamesHolder(t *testing.T) {
	root := replayExample(t)
	path := replaytest.RunPath(root, replaytest.ExampleRunID)
	cmd := exec.Command(os.Args[0], "-test.run=^TestReplayHelperHoldsLock$")
	cmd.Env = append(os.Environ(), "RUNLOG_REPLAY_HOLD="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "holding\n" {
		t.Fatalf("helper said %q, %v", line, err)
	}
	_, errOut, code := runReplay(t, replaytest.ExampleRunID, "--root", root, "--state")
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{
		"run run-example is locked by another process",
		fmt.Sprintf("pid %d", cmd.Process.Pid),
		"no service answers",
		fmt.Sprintf("kill %d", cmd.Process.Pid),
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("error lacks %q: %s", want, errOut)
		}
	}
}

// fakeService serves Read and Verify for one run whose log it holds open, as
// the service does, so the replay command's service path can be tested
// before and beside the real service. With decodedOnly it ignores
// ReadRequest.encoded, as a service that predates it does.
type fakeService struct {
	runlogv1.UnimplementedRunlogServer
	runID       string
	log         *wal.Log
	decodedOnly bool
	plainReads  atomic.Int64 // Read calls that did not ask for encoded
}

func (f *fakeService) Read(req *runlogv1.ReadRequest, st grpc.ServerStreamingServer[runlogv1.ReadResponse]) error {
	if req.RunId != f.runID {
		return status.Errorf(codes.NotFound, "no run %q", req.RunId)
	}
	if !req.Encoded {
		f.plainReads.Add(1)
	}
	from := max(req.FromSeq, 1)
	for {
		if req.ToSeq != 0 && from > req.ToSeq {
			return nil
		}
		changed := f.log.Changed()
		resp, n, err := f.chunk(from, req.ToSeq, req.Encoded && !f.decodedOnly)
		if err != nil {
			return status.Error(codes.DataLoss, err.Error())
		}
		if n > 0 {
			if err := st.Send(resp); err != nil {
				return err
			}
			from += uint64(n)
			continue
		}
		if !req.Follow || f.log.Finished() {
			return nil
		}
		select {
		case <-changed:
		case <-st.Context().Done():
			return st.Context().Err()
		}
	}
}

// chunk reads up to 256 records from seq from, decoded or as stored.
func (f *fakeService) chunk(from, to uint64, encoded bool) (*runlogv1.ReadResponse, int, error) {
	resp := &runlogv1.ReadResponse{}
	err := f.log.Scan(from, func(seq uint64, data []byte) error {
		if to != 0 && seq > to || len(resp.Encoded)+len(resp.Records) == 256 {
			return errChunkDone
		}
		if encoded {
			resp.Encoded = append(resp.Encoded, append([]byte(nil), data...))
			return nil
		}
		r := new(runlogv1.Record)
		if err := proto.Unmarshal(data, r); err != nil {
			return err
		}
		resp.Records = append(resp.Records, r)
		return nil
	})
	if errors.Is(err, errChunkDone) {
		err = nil
	}
	return resp, len(resp.Encoded) + len(resp.Records), err
}

var errChunkDone = errors.New("chunk done")

func (f *fakeService) Verify(ctx context.Context, req *runlogv1.VerifyRequest) (*runlogv1.VerifyResponse, error) {
	if req.RunId != f.runID {
		return nil, status.Errorf(codes.NotFound, "no run %q", req.RunId)
	}
	return replay.VerifyResponse(f.log, wal.VerifyOptions{})
}

// serveFake holds the run's log open for writing and serves it on
// ROOT/service.sock until the test ends.
func serveFake(t *testing.T, root, runID string) *wal.Log {
	t.Helper()
	return serveFakeService(t, root, &fakeService{runID: runID})
}

// serveFakeService is serveFake with the fake given.
func serveFakeService(t *testing.T, root string, f *fakeService) *wal.Log {
	t.Helper()
	l, err := wal.Open(replaytest.RunPath(root, f.runID), replaytest.Options())
	if err != nil {
		t.Fatal(err)
	}
	f.log = l
	lis, err := net.Listen("unix", rootAt(root).Socket())
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	runlogv1.RegisterRunlogServer(srv, f)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		wg.Wait()
		l.Close()
	})
	return l
}

func TestReplayThroughService(t *testing.T) {
	// The same golden outputs, read through a service that holds the log:
	// one that sends the records as stored, and one that predates that and
	// sends them decoded.
	for _, decodedOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("decodedOnly=%v", decodedOnly), func(t *testing.T) {
			root := replayExample(t)
			id := replaytest.ExampleRunID
			fake := &fakeService{runID: id, decodedOnly: decodedOnly}
			serveFakeService(t, root, fake)
			for _, c := range replayGoldenCases {
				if c.name == "verify" {
					continue
				}
				out, errOut, code := runReplay(t, append([]string{id, "--root", root}, c.args...)...)
				want, err := os.ReadFile(filepath.Join("testdata", "replay", c.name+".golden"))
				if err != nil {
					t.Fatal(err)
				}
				if code != 0 || out != string(want) {
					t.Fatalf("%s through the service: exit %d %s\n%s", c.name, code, errOut, lineDiff(string(want), out))
				}
			}
			out, _, code := runReplay(t, id, "--root", root, "--verify")
			if code != 0 || !strings.Contains(out, "through the service: clean, last good seq 25") {
				t.Fatalf("verify through the service: exit %d\n%s", code, out)
			}
			if n := fake.plainReads.Load(); n != 0 {
				t.Fatalf("%d reads through the service asked for decoded records", n)
			}
		})
	}
}

// replayHeld reports whether a process holds the run's log, so that replay
// must read it through the service.
func replayHeld(t *testing.T, root, id string) bool {
	t.Helper()
	l, err := wal.Open(replaytest.RunPath(root, id), wal.Options{ReadOnly: true, LockTimeout: 10 * time.Millisecond})
	if err == nil {
		l.Close()
		return false
	}
	if !errors.Is(err, wal.ErrLocked) {
		t.Fatal(err)
	}
	return true
}

// TestReplayLiveSameAsFile reads an unfinished run from its file, then
// through the real service that recovered it and holds it: every output is
// the same bytes.
func TestReplayLiveSameAsFile(t *testing.T) {
	root := unfinishedRun(t)
	id := replaytest.ExampleRunID
	fromFile := make(map[string]string)
	for _, c := range replayGoldenCases {
		out, errOut, code := runReplay(t, append([]string{id, "--root", root}, c.args...)...)
		if code != 0 || errOut != "" {
			t.Fatalf("%s from the file: exit %d %s", c.name, code, errOut)
		}
		fromFile[c.name] = out
	}
	muxtest.StartAt(t, root, mux.Options{CrashGrace: time.Hour})
	if !replayHeld(t, root, id) {
		t.Fatal("the service does not hold the unfinished run")
	}
	for _, c := range replayGoldenCases {
		out, errOut, code := runReplay(t, append([]string{id, "--root", root}, c.args...)...)
		if code != 0 || errOut != "" {
			t.Fatalf("%s through the service: exit %d %s", c.name, code, errOut)
		}
		want := fromFile[c.name]
		if c.name == "verify" {
			out = timing.ReplaceAllString(out, "in T (R records/s)")
			want = strings.Replace(timing.ReplaceAllString(want, "in T (R records/s)"), ":", " through the service:", 1)
		}
		if out != want {
			t.Fatalf("%s through the service differs from the file:\n%s", c.name, lineDiff(want, out))
		}
	}
}

// TestReplayLiveDamage reads a run with a damaged record through the real
// service: the records before it are printed, then the error names its seq.
func TestReplayLiveDamage(t *testing.T) {
	root := unfinishedRun(t)
	id := replaytest.ExampleRunID
	path := replaytest.RunPath(root, id)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("records"))
		v := append([]byte(nil), b.Get(seqKey(7))...)
		v[len(v)-3] ^= 0x40
		return b.Put(seqKey(7), v)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	// The history rows among records 1..6.
	historyBefore, seq := 0, 0
	for _, b := range replaytest.Example() {
		for _, r := range b {
			if seq++; seq < 7 && r.GetHistory() != nil {
				historyBefore++
			}
		}
	}
	muxtest.StartAt(t, root, mux.Options{CrashGrace: time.Hour})
	if !replayHeld(t, root, id) {
		t.Fatal("the service does not hold the damaged run")
	}
	for _, args := range [][]string{nil, {"--json"}, {"--kind", "history"}, {"--follow"}} {
		out, errOut, code := runReplay(t, append([]string{id, "--root", root}, args...)...)
		lines := strings.Count(out, "\n")
		wantLines := 6
		if len(args) > 0 && args[0] == "--kind" {
			wantLines = historyBefore
		}
		if code != 1 || lines != wantLines || !strings.Contains(errOut, "corrupt record at seq 7") {
			t.Fatalf("%v: exit %d, %d lines (want %d), stderr %q", args, code, lines, wantLines, errOut)
		}
	}
	for _, args := range [][]string{{"--state"}, {"--history"}} {
		_, errOut, code := runReplay(t, append([]string{id, "--root", root}, args...)...)
		if code != 1 || !strings.Contains(errOut, "corrupt record at seq 7") {
			t.Fatalf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}

}

// unfinishedRun writes the example without its exit record.
func unfinishedRun(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	l := replaytest.Open(t, replaytest.RunPath(root, replaytest.ExampleRunID))
	batches := replaytest.Example()
	for _, b := range batches[:len(batches)-1] {
		if err := l.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	return root
}

// followLines runs --follow with its output on a pipe and returns a reader
// of its lines and a channel with its exit status.
func followLines(t *testing.T, ctx context.Context, args ...string) (*bufio.Scanner, <-chan int, *bytes.Buffer) {
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() {
		code := replayMain(ctx, append(args, "--follow"), pw, &errb)
		pw.Close()
		done <- code
	}()
	t.Cleanup(func() { pr.Close() })
	return bufio.NewScanner(pr), done, &errb
}

func expectLines(t *testing.T, sc *bufio.Scanner, from, to uint64) {
	t.Helper()
	for seq := from; seq <= to; seq++ {
		if !sc.Scan() {
			t.Fatalf("output ended before seq %d: %v", seq, sc.Err())
		}
		if want := fmt.Sprintf("%d  ", seq); !strings.HasPrefix(sc.Text(), want) {
			t.Fatalf("line %q, want seq %d", sc.Text(), seq)
		}
	}
}

func TestReplayFollowThroughService(t *testing.T) {
	root := unfinishedRun(t)
	l := serveFake(t, root, replaytest.ExampleRunID)
	sc, done, errb := followLines(t, context.Background(), replaytest.ExampleRunID, "--root", root)
	expectLines(t, sc, 1, 24)
	// Written after the follower printed everything there was.
	more := []*runlogv1.Record{{ClientId: "late", Payload: &runlogv1.Record_Output{Output: &runlogv1.ConsoleOutput{Text: "late\n"}}}}
	if err := l.Append(more); err != nil {
		t.Fatal(err)
	}
	expectLines(t, sc, 25, 25)
	if err := l.Append(replaytest.Example()[5]); err != nil {
		t.Fatal(err)
	}
	expectLines(t, sc, 26, 26)
	// The exit record ends the run and the follow.
	if code := <-done; code != 0 {
		t.Fatalf("follow exited %d: %s", code, errb)
	}
	if sc.Scan() {
		t.Fatalf("output after the exit record: %q", sc.Text())
	}
}

func TestReplayFollowStopsOnCancel(t *testing.T) {
	root := unfinishedRun(t)
	l := serveFake(t, root, replaytest.ExampleRunID)
	ctx, cancel := context.WithCancel(context.Background())
	sc, done, errb := followLines(t, ctx, replaytest.ExampleRunID, "--root", root, "--kind", "history")
	for i := range 12 {
		if !sc.Scan() || !strings.Contains(sc.Text(), "  history  ") {
			t.Fatalf("history line %d: %q %v", i, sc.Text(), sc.Err())
		}
	}
	rows := replaytest.Example()[1][:1]
	rows[0].GetHistory().Step = 10
	if err := l.Append(rows); err != nil {
		t.Fatal(err)
	}
	expectLines(t, sc, 25, 25)
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("follow exited %d after cancel: %s", code, errb)
	}
}

// TestReplayFollowTo: a follow with --to ends at that seq, even when it is
// the last record there is and the run is still open.
func TestReplayFollowTo(t *testing.T) {
	root := unfinishedRun(t)
	serveFake(t, root, replaytest.ExampleRunID)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sc, done, errb := followLines(t, ctx, replaytest.ExampleRunID, "--root", root, "--from", "20", "--to", "24")
	expectLines(t, sc, 20, 24)
	if code := <-done; code != 0 || ctx.Err() != nil || errb.Len() != 0 {
		t.Fatalf("follow exited %d (%v): %s", code, ctx.Err(), errb)
	}
	if sc.Scan() {
		t.Fatalf("output after seq 24: %q", sc.Text())
	}
}

func TestReplayFollowWithoutService(t *testing.T) {
	root := unfinishedRun(t)
	out, errOut, code := runReplay(t, replaytest.ExampleRunID, "--root", root, "--follow")
	if code != 0 || strings.Count(out, "\n") != 24 || !strings.Contains(errOut, "no process is writing it") {
		t.Fatalf("unfinished run: exit %d, %d lines, stderr %q", code, strings.Count(out, "\n"), errOut)
	}
	root = replayExample(t)
	out, errOut, code = runReplay(t, replaytest.ExampleRunID, "--root", root, "--follow")
	if code != 0 || strings.Count(out, "\n") != 25 || errOut != "" {
		t.Fatalf("finished run: exit %d, %d lines, stderr %q", code, strings.Count(out, "\n"), errOut)
	}
}

// BenchmarkReplay runs the command over a run of 1,000,000 history records
// with 10 keys each, stdout on /dev/null, and reports records/s: the figures
// of the replay issue (--verify >= 2M records/s, --json >= 300k records/s).
func BenchmarkReplay(b *testing.B) {
	const n = 1_000_000
	root := b.TempDir()
	l := replaytest.Open(b, replaytest.RunPath(root, "bench"))
	replaytest.WriteHistory(b, l, n, 10)
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devnull.Close()
	for _, c := range []struct {
		name string
		args []string
	}{
		{"verify", []string{"--verify"}},
		{"json", []string{"--json"}},
		{"text", nil},
		{"state", []string{"--state"}},
		{"csv", []string{"--history", "--keys", "metric/0,metric/5"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				var errb bytes.Buffer
				args := append([]string{"bench", "--root", root}, c.args...)
				if code := replayMain(context.Background(), args, devnull, &errb); code != 0 {
					b.Fatalf("exit %d: %s", code, errb.String())
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// publishBatch publishes encoded records to a run through the service and
// waits for the ack.
func publishBatch(t *testing.T, st grpc.BidiStreamingClient[runlogv1.PublishRequest, runlogv1.PublishResponse], runID, clientID string, batch uint64, recs [][]byte) {
	t.Helper()
	if err := st.Send(&runlogv1.PublishRequest{RunId: runID, ClientId: clientID, Batch: batch, Records: recs}); err != nil {
		t.Fatal(err)
	}
	resp, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetError() != nil || len(resp.GetRejections()) > 0 {
		t.Fatalf("batch %d: %v %v", batch, resp.GetError(), resp.GetRejections())
	}
}

// TestReplayLiveRun reads, verifies, folds and follows a run that the real
// service is writing, then reads the finished run from its file.
func TestReplayLiveRun(t *testing.T) {
	srv := muxtest.Start(t, mux.Options{})
	root := srv.Root()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ir, err := srv.Client.Init(ctx, &runlogv1.InitRequest{RunId: "live", Info: &runlogv1.RunInfo{Project: "p", Name: "live"}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := srv.Client.Publish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.CloseSend()
	publishBatch(t, st, "live", ir.ClientId, 1, muxtest.HistoryBatch(t, 1, 0, 50, 3))

	// The service holds the file: everything goes through it.
	out, errOut, code := runReplay(t, "live", "--root", root, "--json")
	if code != 0 || strings.Count(out, "\n") != 51 {
		t.Fatalf("read through the service: exit %d, %d lines, %s", code, strings.Count(out, "\n"), errOut)
	}
	live := out
	out, errOut, code = runReplay(t, "live", "--root", root, "--verify")
	if code != 0 || !strings.Contains(out, "51 records") || !strings.Contains(out, "through the service: clean, last good seq 51") {
		t.Fatalf("verify through the service: exit %d\n%s%s", code, out, errOut)
	}
	out, _, code = runReplay(t, "live", "--root", root, "--state")
	if code != 0 || !strings.Contains(out, "status     running\n") || !strings.Contains(out, "history    50 rows, last step 49\n") {
		t.Fatalf("state through the service: exit %d\n%s", code, out)
	}
	q, err := srv.Client.Query(ctx, &runlogv1.QueryRequest{RunId: "live"})
	if err != nil {
		t.Fatal(err)
	}
	out, _, _ = runReplay(t, "live", "--root", root, "--state", "--json")
	if !strings.Contains(out, fmt.Sprintf(`"history_rows":%d,`, q.State.HistoryRows)) || !strings.Contains(out, fmt.Sprintf(`"last_seq":%d,`, q.State.LastSeq)) {
		t.Fatalf("replay --state and the service's Query disagree:\n%s\n%v", out, q.State)
	}

	// --follow prints what is there, then what is written after it started.
	sc, done, errb := followLines(t, ctx, "live", "--root", root)
	expectLines(t, sc, 1, 51)
	publishBatch(t, st, "live", ir.ClientId, 2, muxtest.HistoryBatch(t, 51, 50, 10, 3))
	expectLines(t, sc, 52, 61)
	if _, err := srv.Client.Finish(ctx, &runlogv1.FinishRequest{RunId: "live", ClientId: ir.ClientId}); err != nil {
		t.Fatal(err)
	}
	expectLines(t, sc, 62, 62)
	if code := <-done; code != 0 {
		t.Fatalf("follow exited %d: %s", code, errb)
	}

	// Once the service let go of the finished run, the file is read
	// directly, and says the same.
	out, _, code = runReplay(t, "live", "--root", root, "--verify")
	if code != 0 || strings.Contains(out, "through the service") || !strings.Contains(out, "clean, last good seq 62") {
		t.Fatalf("verify of the finished run: exit %d\n%s", code, out)
	}
	out, errOut, code = runReplay(t, "live", "--root", root, "--json", "--to", "51")
	if code != 0 || out != live {
		t.Fatalf("file after finish (exit %d %s) differs from the live read:\n%s", code, errOut, lineDiff(live, out))
	}
}

// TestReplayStateRecountsHistory covers a log whose irregular steps make the
// fold estimate the rows a deep rewind dropped: --state counts them exactly.
func TestReplayStateRecountsHistory(t *testing.T) {
	root := t.TempDir()
	l := replaytest.Open(t, replaytest.RunPath(root, "jumpy"))
	var recs []*runlogv1.Record
	step := int64(0)
	for i := range 5000 {
		// Steps that count samples of varying batch sizes: no two gaps alike
		// for long.
		step += int64(1 + (i*7919)%13)
		recs = append(recs, &runlogv1.Record{Payload: &runlogv1.Record_History{History: &runlogv1.HistoryRow{Step: step}}})
	}
	rewindTo := recs[1000].GetHistory().Step
	recs = append(recs, &runlogv1.Record{Payload: &runlogv1.Record_Rewind{Rewind: &runlogv1.Rewind{Step: rewindTo}}})
	if err := l.Append(recs); err != nil {
		t.Fatal(err)
	}
	l.Close()
	fold, err := func() (*replay.State, error) {
		l, err := wal.Open(replaytest.RunPath(root, "jumpy"), wal.Options{ReadOnly: true})
		if err != nil {
			return nil, err
		}
		defer l.Close()
		return replay.Fold(l, "jumpy", 0)
	}()
	if err != nil {
		t.Fatal(err)
	}
	if fold.HistoryRowsExact() {
		t.Fatal("the test log does not make the fold estimate")
	}
	out, errOut, code := runReplay(t, "jumpy", "--root", root, "--state", "--json")
	// Rows before the one the rewind's step came from stay: 1000 of them.
	if code != 0 || !strings.Contains(out, `"history_rows":1000,"history_rows_exact":true,`) {
		t.Fatalf("exit %d %s\n%s", code, errOut, out)
	}
}

// BenchmarkReplayLive is BenchmarkReplay for a live run: a `runlog service`
// process holds the run's log (1,000,000 history records with 10 keys each,
// no exit record), so the runlog binary's replay, stdout on /dev/null, reads
// it through the service. Each mode's output is first checked to be byte for
// byte what reading the file gives.
//
//	go build -o /tmp/w/runlog ./cmd/runlog
//	RUNLOG_BIN=/tmp/w/runlog go test -run '^$' -bench ReplayLive -benchtime 1x ./cmd/runlog/
//
// RUNLOG_BENCH_RECORDS overrides the number of records.
func BenchmarkReplayLive(b *testing.B) {
	n := benchRecords(b, 1_000_000)
	root := b.TempDir()
	l := replaytest.Open(b, replaytest.RunPath(root, "bench"))
	replaytest.WriteHistory(b, l, n, 10)
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
	}{
		{"json", []string{"--json"}},
		{"text", nil},
		{"state", []string{"--state"}},
		{"csv", []string{"--history", "--keys", "metric/0,metric/5"}},
	}
	// What the file says, read before a service holds it.
	want := make(map[string][]byte)
	for _, c := range cases {
		h := sha256.New()
		var errb bytes.Buffer
		if code := replayMain(context.Background(), append([]string{"bench", "--root", root}, c.args...), h, &errb); code != 0 {
			b.Fatalf("%s from the file: exit %d: %s", c.name, code, errb.String())
		}
		want[c.name] = h.Sum(nil)
	}

	// The service recovers the unfinished run and holds it for the grace.
	startService(b, root, "--offline", "--crash-grace", "1h")
	code, out, errOut := runCmd(b, "replay", "bench", "--root", root, "--verify")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("through the service: clean, last good seq %d", n)) {
		b.Fatalf("verify through the service: exit %d\n%s%s", code, out, errOut)
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devnull.Close()
	for _, c := range cases {
		args := append([]string{"replay", "bench", "--root", root}, c.args...)
		checked := false
		b.Run(c.name, func(b *testing.B) {
			if !checked {
				h := sha256.New()
				if errOut := replayCmd(b, args, h); !bytes.Equal(h.Sum(nil), want[c.name]) {
					b.Fatalf("the output through the service differs from the file's (stderr %q)", errOut)
				}
				checked = true
			}
			b.ResetTimer()
			for range b.N {
				replayCmd(b, args, devnull)
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// replayCmd runs the runlog binary with its stdout on w; it must exit 0.
// It returns the command's stderr.
func replayCmd(b *testing.B, args []string, w io.Writer) string {
	b.Helper()
	cmd := exec.Command(bin(b), args...)
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, &errb
	if err := cmd.Run(); err != nil {
		b.Fatalf("runlog %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return errb.String()
}

package local_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/runlog/runlog/local"
	"github.com/runlog/runlog/mux"
	"github.com/runlog/runlog/mux/muxtest"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/replay/replaytest"
	"github.com/runlog/runlog/root"
	"github.com/runlog/runlog/wal"
	"github.com/runlog/runlog/wal/waltest"
)

// unfinishedRun writes the example run without its exit record, so that a
// service started on the root recovers it and holds its log, and returns
// the records as the file stores them.
func unfinishedRun(t *testing.T) (root.Dir, [][]byte) {
	t.Helper()
	d := root.Dir(t.TempDir())
	l := replaytest.Open(t, d.Log(replaytest.ExampleRunID))
	batches := replaytest.Example()
	for _, b := range batches[:len(batches)-1] {
		if err := l.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	var stored [][]byte
	if err := l.Scan(1, func(_ uint64, data []byte) error {
		stored = append(stored, append([]byte(nil), data...))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	return d, stored
}

func openHeld(t *testing.T, d root.Dir) *local.Run {
	t.Helper()
	muxtest.StartAt(t, string(d), mux.Options{CrashGrace: time.Hour})
	run, err := local.Open(context.Background(), local.RunRef(d, replaytest.ExampleRunID), local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run.Close() })
	if !run.ThroughService() {
		t.Fatal("opened the file, not the service that holds it")
	}
	return run
}

// hold opens the log at path for writing until the test ends.
func hold(t *testing.T, path string) {
	t.Helper()
	l := replaytest.Open(t, path)
	t.Cleanup(func() { l.Close() })
}

// errStop ends a scan the way a Sender ends a batch.
var errStop = errors.New("stop")

func TestRemoteReadsRecordsAsStored(t *testing.T) {
	d, stored := unfinishedRun(t)
	run := openHeld(t, d)
	src := run.Source()
	if _, ok := src.(interface{ SetCursor(string, uint64) error }); ok {
		t.Fatal("a run read through the service offers cursor storage; only the service may write its file")
	}
	if src.LastSeq() != uint64(len(stored)) || src.Finished() {
		t.Fatalf("LastSeq %d, Finished %v; want %d, false", src.LastSeq(), src.Finished(), len(stored))
	}
	// In batches of three, each scan going on where the last stopped, as a
	// Sender reads; then once more from the start.
	var got [][]byte
	for from := uint64(1); from <= uint64(len(stored)); {
		n := 0
		err := src.Scan(from, func(seq uint64, data []byte) error {
			if seq != from+uint64(n) {
				t.Fatalf("seq %d, want %d", seq, from+uint64(n))
			}
			got = append(got, append([]byte(nil), data...))
			if n++; n == 3 {
				return errStop
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			t.Fatal(err)
		}
		from += uint64(n)
	}
	n := 0
	if err := run.Scan(1, func(uint64, []byte) error { n++; return nil }); err != nil || n != len(stored) {
		t.Fatalf("scan from the start: %d records, %v", n, err)
	}
	if len(got) != len(stored) {
		t.Fatalf("%d records through the service, %d in the file", len(got), len(stored))
	}
	for i := range got {
		if !bytes.Equal(got[i], stored[i]) {
			t.Fatalf("seq %d: the service sent other bytes than the file stores", i+1)
		}
	}
}

// TestRemoteDamageIsTheFilesError: a damaged record found by the service
// ends the read with the *wal.CorruptError the file gives, after the
// records before it, its reason intact.
func TestRemoteDamageIsTheFilesError(t *testing.T) {
	d, _ := unfinishedRun(t)
	path := d.Log(replaytest.ExampleRunID)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("records"))
		k := binary.BigEndian.AppendUint64(nil, 7)
		v := append([]byte(nil), b.Get(k)...)
		v[len(v)-3] ^= 0x40
		return b.Put(k, v)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	run := openHeld(t, d)
	n := 0
	err = run.Scan(1, func(uint64, []byte) error { n++; return nil })
	var corrupt *wal.CorruptError
	if !errors.As(err, &corrupt) || corrupt.Seq != 7 || corrupt.Path != path || n != 6 {
		t.Fatalf("%d records, then %v; want 6, then a *wal.CorruptError at seq 7 of %s", n, err, path)
	}
	if !strings.Contains(corrupt.Err.Error(), "checksum") || strings.Contains(corrupt.Err.Error(), "corrupt record") {
		t.Fatalf("reason %q: want the log's own words about the record", corrupt.Err)
	}
}

func TestOpenNamesTheHolder(t *testing.T) {
	d := root.Dir(t.TempDir())
	hold(t, d.Log("r"))
	_, err := local.Open(context.Background(), local.RunRef(d, "r"), local.Options{})
	var held *local.HeldError
	if !errors.As(err, &held) {
		t.Fatalf("open of a held run without a service: %v, want a *local.HeldError", err)
	}
	if _, err := os.Stat("/proc/locks"); err == nil && held.PID != os.Getpid() {
		t.Fatalf("holder pid %d, want this process %d: %v", held.PID, os.Getpid(), err)
	}
	if !strings.Contains(err.Error(), "no service answers") {
		t.Fatalf("message %q", err)
	}

	_, err = local.Open(context.Background(), local.RunRef(d, "none"), local.Options{})
	if !errors.Is(err, wal.ErrNotExist) || !strings.Contains(err.Error(), "no run none") {
		t.Fatalf("open of a missing run: %v", err)
	}
}

func TestParseRef(t *testing.T) {
	d := root.Dir(t.TempDir())
	other := root.Dir(t.TempDir())
	replaytest.Open(t, other.Log("r1")).Close()
	if ref := local.ParseRef("r1", d, false); ref != local.RunRef(d, "r1") {
		t.Errorf("run id: %+v", ref)
	}
	// A log file in another root's layout belongs to that root, unless the
	// root was given.
	if ref := local.ParseRef(other.Log("r1"), d, false); ref.Root != other || ref.ID != "r1" || ref.Path != other.Log("r1") {
		t.Errorf("path in a root: %+v", ref)
	}
	if ref := local.ParseRef(other.Log("r1"), d, true); ref.Root != d || ref.ID != "r1" {
		t.Errorf("path with --root: %+v", ref)
	}
	loose := filepath.Join(t.TempDir(), "copy.bolt")
	if err := os.WriteFile(loose, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if ref := local.ParseRef(loose, d, false); ref.Root != d || ref.Path != loose {
		t.Errorf("loose file: %+v", ref)
	}
}

// A later RunInfo record (a resume, or another process attaching with more
// info) updates the fields it sets: the listing folds them all, not just the
// first record's. A run another process holds is listed with an error.
func TestListFilesFoldsRunInfo(t *testing.T) {
	d := root.Dir(t.TempDir())
	for _, tc := range []struct {
		id   string
		tail []*runlogv1.Record
		want *runlogv1.RunSummary
	}{
		{"01aaa", []*runlogv1.Record{
			{Payload: &runlogv1.Record_Run{Run: &runlogv1.RunInfo{Project: "mnist", Name: "renamed"}}},
			waltest.History(5, 1, 1)[0],
			{Payload: &runlogv1.Record_Exit{Exit: &runlogv1.Exit{Reason: runlogv1.ExitReason_EXIT_REASON_KILLED}}},
		}, &runlogv1.RunSummary{Project: "mnist", Name: "renamed", Status: runlogv1.RunStatus_RUN_STATUS_KILLED, LastSeq: 9, LastStep: 5}},
		// The update is the last record: a resume that logged nothing yet.
		{"01bbb", []*runlogv1.Record{
			{Payload: &runlogv1.Record_Run{Run: &runlogv1.RunInfo{Name: "resumed"}}},
		}, &runlogv1.RunSummary{Name: "resumed", Status: runlogv1.RunStatus_RUN_STATUS_RUNNING, LastSeq: 7, LastStep: 4}},
	} {
		l, err := wal.Open(d.Log(tc.id), wal.Options{})
		if err != nil {
			t.Fatal(err)
		}
		recs := []*runlogv1.Record{{Payload: &runlogv1.Record_Run{Run: &runlogv1.RunInfo{Name: "first"}}}}
		recs = append(recs, waltest.History(0, 5, 2)...)
		recs = append(recs, tc.tail...)
		if err := l.Append(recs); err != nil {
			t.Fatal(err)
		}
		l.Close()
	}
	hold(t, d.Log("01ccc"))
	sums, err := local.ListFiles(d)
	if err != nil || len(sums) != 3 {
		t.Fatalf("%d runs, %v", len(sums), err)
	}
	for i, want := range []*runlogv1.RunSummary{
		{RunId: "01aaa", Project: "mnist", Name: "renamed", Status: runlogv1.RunStatus_RUN_STATUS_KILLED, LastSeq: 9, LastStep: 5},
		{RunId: "01bbb", Name: "resumed", Status: runlogv1.RunStatus_RUN_STATUS_RUNNING, LastSeq: 7, LastStep: 4},
		{RunId: "01ccc", LastStep: -1, Error: "log is held by another process"},
	} {
		got := sums[i]
		if got.GetRunId() != want.GetRunId() || got.GetProject() != want.GetProject() || got.GetName() != want.GetName() ||
			got.GetStatus() != want.GetStatus() || got.GetLastSeq() != want.GetLastSeq() || got.GetLastStep() != want.GetLastStep() ||
			got.GetError() != want.GetError() {
			t.Errorf("run %d = %v, want %v", i, got, want)
		}
		if want.GetError() == "" && got.GetSizeBytes() <= 0 {
			t.Errorf("run %s: size %d", got.GetRunId(), got.GetSizeBytes())
		}
	}
}

func TestVerifyAllGoesOnPastAnUnreadableRun(t *testing.T) {
	d, stored := unfinishedRun(t)
	// "a-bad" sorts before the example run: its failure must not stop the check.
	bad := d.Log("a-bad")
	if err := os.MkdirAll(filepath.Dir(bad), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("not a bolt file"), 0o600); err != nil {
		t.Fatal(err)
	}
	var got []local.Verified
	err := local.VerifyAll(context.Background(), d, time.Second, func(v local.Verified) error {
		got = append(got, v)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != "a-bad" || got[1].ID != replaytest.ExampleRunID {
		t.Fatalf("checked %+v; want a-bad, then %s", got, replaytest.ExampleRunID)
	}
	if got[0].Err == nil || got[0].Result != nil {
		t.Fatalf("a-bad: %+v; want an error and no result", got[0])
	}
	ok := got[1]
	if ok.Err != nil || ok.ThroughService || len(ok.Result.GetProblems()) != 0 || ok.Result.GetRecords() != uint64(len(stored)) {
		t.Fatalf("%s: %+v; want %d records, clean, from the file", ok.ID, ok, len(stored))
	}

	n := 0
	err = local.VerifyAll(context.Background(), d, time.Second, func(local.Verified) error { n++; return errStop })
	if !errors.Is(err, errStop) || n != 1 {
		t.Fatalf("%d runs, then %v; want fn's error after the first run", n, err)
	}
}

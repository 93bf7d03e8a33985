package mux_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/runlog/runlog/mux"
	"github.com/runlog/runlog/mux/muxtest"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wal"
)

// tailer is a Follower that reads each run to its exit record, stores a
// cursor and a sync error as an upstream sender would, and holds the run
// open until the test releases it.
type tailer struct {
	want func(id string) bool

	mu      sync.Mutex
	asked   []string
	records map[string]uint64 // records read per run
	hold    chan struct{}     // closed by the test: Follow may return
	done    chan string       // a Follow call returned
}

var _ mux.Follower = (*tailer)(nil)

func (f *tailer) Wants(id string, l *wal.Log) bool {
	f.mu.Lock()
	f.asked = append(f.asked, id)
	f.mu.Unlock()
	return f.want(id)
}

func (f *tailer) Follow(ctx context.Context, id string, l *wal.Log) error {
	defer func() { f.done <- id }()
	next := uint64(1)
	for {
		recs, err := l.Read(next, 100, 0)
		if err != nil {
			return err
		}
		if len(recs) > 0 {
			next = recs[len(recs)-1].Seq + 1
			f.mu.Lock()
			f.records[id] += uint64(len(recs))
			f.mu.Unlock()
			if err := l.SetCursor("upstream:grpc://hub:1", next-1); err != nil {
				return err
			}
			continue
		}
		if l.Finished() {
			break
		}
		if err := l.Wait(ctx, next-1); err != nil {
			return err
		}
	}
	if err := l.SetMeta("sync_error:grpc://hub:1", []byte("hub said no")); err != nil {
		return err
	}
	select {
	case <-f.hold:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestFollowersTailEveryRun(t *testing.T) {
	checkLeaks(t)
	root := t.TempDir()
	f := &tailer{want: func(string) bool { return true }, records: map[string]uint64{},
		hold: make(chan struct{}), done: make(chan string, 10)}
	srv := muxtest.StartAt(t, root, mux.Options{Followers: []mux.Follower{f}})
	c := srv.Client
	ir := initRun(t, c, &runlogv1.InitRequest{RunId: "followed", Mode: runlogv1.SyncMode_SYNC_MODE_OFFLINE})
	st := openStream(t, c)
	send(t, st, &runlogv1.PublishRequest{RunId: "followed", ClientId: ir.ClientId, Batch: 1,
		Records: muxtest.HistoryBatch(t, 1, 0, 250, 2)})
	fin, err := c.Finish(ctxT(t), &runlogv1.FinishRequest{RunId: "followed", ClientId: ir.ClientId})
	if err != nil || !fin.Closed {
		t.Fatalf("Finish: %v, %v", fin, err)
	}

	// The follower still holds the run: it stays open, and its cursor and
	// sync error show in the listing.
	for {
		list, err := c.ListRuns(ctxT(t), &runlogv1.ListRunsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		r := list.Runs[0]
		if !r.Open {
			t.Fatal("run closed while its follower still runs")
		}
		if r.SyncErrors["grpc://hub:1"] == "hub said no" {
			if r.Cursors["upstream:grpc://hub:1"] != fin.Seq {
				t.Fatalf("cursor %v, want %d", r.Cursors, fin.Seq)
			}
			break
		}
		// The follower writes its error after reading the exit; no event
		// tells the test when, so poll.
		time.Sleep(5 * time.Millisecond)
	}
	close(f.hold)
	if id := <-f.done; id != "followed" {
		t.Fatalf("Follow returned for %s", id)
	}
	awaitClosed(t, c, "followed")
	f.mu.Lock()
	if f.records["followed"] != fin.Seq {
		t.Fatalf("follower read %d records, want %d", f.records["followed"], fin.Seq)
	}
	f.mu.Unlock()

	// The sync mode is kept for followers.
	l, err := wal.Open(ir.Path, wal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	mode, err := l.Meta(mux.MetaSyncMode)
	l.Close()
	if err != nil || string(mode) != "offline" {
		t.Fatalf("sync mode %q, %v", mode, err)
	}

	// At startup, finished runs are opened only for followers that want
	// them; unfinished ones always are.
	initRun(t, c, &runlogv1.InitRequest{RunId: "open"})
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	f2 := &tailer{want: func(id string) bool { return id == "open" }, records: map[string]uint64{},
		hold: make(chan struct{}), done: make(chan string, 10)}
	close(f2.hold)
	srv = muxtest.StartAt(t, root, mux.Options{Followers: []mux.Follower{f2}})
	list, err := srv.Client.ListRuns(ctxT(t), &runlogv1.ListRunsRequest{})
	if err != nil || len(list.Runs) != 2 {
		t.Fatalf("ListRuns: %v, %v", list, err)
	}
	if list.Runs[0].RunId != "followed" || list.Runs[0].Open || list.Runs[1].RunId != "open" || !list.Runs[1].Open {
		t.Fatalf("after restart: %v", list.Runs)
	}
	f2.mu.Lock()
	asked := append([]string(nil), f2.asked...)
	f2.mu.Unlock()
	if len(asked) != 2 {
		t.Fatalf("Wants asked for %v, want both runs once", asked)
	}
	// Shutdown cancels the follower of the unfinished run.
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if id := <-f2.done; id != "open" {
		t.Fatalf("Follow returned for %s", id)
	}
}

func TestDefaultModeIsRecordedForNewRuns(t *testing.T) {
	checkLeaks(t)
	srv := muxtest.Start(t, mux.Options{DefaultMode: runlogv1.SyncMode_SYNC_MODE_OFFLINE})
	c := srv.Client
	paths := map[string]string{}
	for id, mode := range map[string]runlogv1.SyncMode{
		"unspecified": runlogv1.SyncMode_SYNC_MODE_UNSPECIFIED,
		"online":      runlogv1.SyncMode_SYNC_MODE_ONLINE,
	} {
		paths[id] = initRun(t, c, &runlogv1.InitRequest{RunId: id, Mode: mode}).Path
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"unspecified": "offline", "online": "online"} {
		l, err := wal.Open(paths[id], wal.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		mode, err := l.Meta(mux.MetaSyncMode)
		l.Close()
		if err != nil || string(mode) != want {
			t.Fatalf("run %s: sync mode %q (%v), want %q", id, mode, err, want)
		}
	}
}

package local_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runlog/runlog/hub"
	"github.com/runlog/runlog/local"
	"github.com/runlog/runlog/mux"
	"github.com/runlog/runlog/mux/muxtest"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/root"
	"github.com/runlog/runlog/sender"
	"github.com/runlog/runlog/sender/sendertest"
	"github.com/runlog/runlog/store/storetest"
	"github.com/runlog/runlog/wal"
)

// TestPushFromFileAndThroughService pushes one run from its file and
// another through the service that holds it, with the one Sender: the hub
// gets every record of both, and the file keeps the cursor.
func TestPushFromFileAndThroughService(t *testing.T) {
	h := sendertest.StartHub(t, hub.Options{})
	d := root.Dir(t.TempDir())
	for _, id := range []string{"closed", "open"} {
		l, err := wal.Open(d.Log(id), wal.Options{})
		if err != nil {
			t.Fatal(err)
		}
		r := storetest.Run{Rows: 2500, Keys: 3}
		if id == "closed" {
			r.Exit = &runlogv1.Exit{Reason: runlogv1.ExitReason_EXIT_REASON_FINISHED}
		}
		storetest.Write(t, l, r)
		l.Close()
	}
	// The service recovers the run without an exit record and holds it.
	muxtest.StartAt(t, string(d), mux.Options{CrashGrace: time.Hour})

	up := h.Dial(sender.HubOptions{})
	target := sender.Target{URL: h.URL, Up: up}
	var sent, done atomic.Uint64
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res := local.PushAll(ctx, d, []string{"closed", "open", "none"}, target, 2, sender.Options{}, &sent, &done)
	if len(res) != 3 || done.Load() != 3 {
		t.Fatalf("%d results, %d done", len(res), done.Load())
	}
	closed, open, none := res[0], res[1], res[2]
	if closed.Result != local.Synced || closed.ThroughService || closed.Sent != closed.LastSeq || closed.HighWater != closed.LastSeq {
		t.Fatalf("closed run: %+v", closed)
	}
	if open.Result != local.Synced || !open.ThroughService || open.Sent != open.LastSeq || open.HighWater != open.LastSeq {
		t.Fatalf("open run: %+v", open)
	}
	if none.Result != local.Failed || none.Error == "" {
		t.Fatalf("missing run: %+v", none)
	}
	if sent.Load() != closed.Sent+open.Sent {
		t.Fatalf("counted %d sent, results say %d", sent.Load(), closed.Sent+open.Sent)
	}
	for _, r := range []local.Pushed{closed, open} {
		got, _, err := h.Store.Run(ctx, r.RunID)
		if err != nil || got.GetHighWater() != r.LastSeq {
			t.Fatalf("hub holds %d of %s (%v), want %d", got.GetHighWater(), r.RunID, err, r.LastSeq)
		}
	}

	// Again: nothing to send.
	again := local.Push(ctx, d, "open", target, sender.Options{}, nil)
	if again.Result != local.UpToDate || again.Sent != 0 {
		t.Fatalf("second push: %+v", again)
	}
	// The file of the closed run keeps the sender's cursor.
	l, err := wal.Open(d.Log("closed"), wal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if c, err := l.Cursor(sender.CursorName(h.URL)); err != nil || c != closed.LastSeq {
		t.Fatalf("cursor of the closed run %d, %v; want %d", c, err, closed.LastSeq)
	}
}

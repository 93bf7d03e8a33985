package mux_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/runlog/runlog/mux"
	"github.com/runlog/runlog/mux/muxtest"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wal"
)

// TestManyRunsConcurrently writes 64 runs at once, each from its own stream
// with several batches in flight, and checks that every acknowledged record
// is in its log exactly once and in order.
func TestManyRunsConcurrently(t *testing.T) {
	checkLeaks(t)
	const (
		runs    = 64
		batches = 10
		size    = 50
		window  = 4
	)
	// Small commits and queues so that backpressure happens, and group
	// commit of several of a run's batches in one transaction (one client
	// per run: it is the batches in flight that share a commit).
	srv := muxtest.Start(t, mux.Options{MaxCommitRecords: 120, MaxQueueRecords: 150})
	paths := make([]string, runs)
	errs := make(chan error, runs)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				id := fmt.Sprintf("run-%02d", i)
				ir, err := srv.Client.Init(ctxT(t), &runlogv1.InitRequest{RunId: id})
				if err != nil {
					return err
				}
				paths[i] = ir.Path
				st, err := srv.Client.Publish(ctxT(t))
				if err != nil {
					return err
				}
				sent, acked := 0, uint64(0)
				answered := 0
				for answered < batches {
					for sent < batches && sent-answered < window {
						if err := st.Send(&runlogv1.PublishRequest{RunId: id, ClientId: ir.ClientId, Batch: uint64(sent),
							Records: muxtest.HistoryBatch(t, uint64(sent*size+1), int64(sent*size), size, 3)}); err != nil {
							return err
						}
						sent++
					}
					resp, err := st.Recv()
					if err != nil {
						return err
					}
					if resp.Error != nil || len(resp.Rejections) != 0 {
						return fmt.Errorf("run %s batch %d: %v", id, resp.Batch, resp)
					}
					// Batches committed together all report the high-water
					// of the commit.
					if resp.AckedClientSeq < (resp.Batch+1)*size || resp.AckedClientSeq < acked || resp.AckedClientSeq > uint64(sent*size) {
						return fmt.Errorf("run %s batch %d acked %d after %d", id, resp.Batch, resp.AckedClientSeq, acked)
					}
					acked = resp.AckedClientSeq
					answered++
				}
				st.CloseSend()
				fin, err := srv.Client.Finish(ctxT(t), &runlogv1.FinishRequest{RunId: id, ClientId: ir.ClientId})
				if err != nil {
					return err
				}
				if !fin.Closed || fin.Seq != 1+batches*size+1 {
					return fmt.Errorf("run %s: Finish = %v", id, fin)
				}
				return nil
			}()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	// Each run's writer wrote its batches and its exit (Init wrote the run
	// info before the writer started). One batch per commit would make as
	// many commits as batches; with four in flight per run, commits must
	// have carried several.
	st := srv.Stats()
	if want := uint64(runs * (batches*size + 1)); st.Records != want {
		t.Fatalf("stats %+v: %d records committed, want %d", st, st.Records, want)
	}
	if st.Batches != runs*(batches+1) || st.Batches <= st.Commits {
		t.Fatalf("%d batches in %d commits (%d records): no commit carried more than one batch", st.Batches, st.Commits, st.Records)
	}
	t.Logf("%d records in %d batches in %d commits: %.1f records, %.2f batches per commit",
		st.Records, st.Batches, st.Commits, float64(st.Records)/float64(st.Commits), float64(st.Batches)/float64(st.Commits))
	for i, p := range paths {
		l, err := wal.Open(p, wal.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		recs, err := l.Read(2, batches*size+10, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != batches*size+1 || !l.Finished() {
			t.Fatalf("run %d: %d records after the run info, want %d and the exit", i, len(recs), batches*size+1)
		}
		for j, r := range recs[:batches*size] {
			if r.ClientSeq != uint64(j+1) || r.GetHistory().GetStep() != int64(j) {
				t.Fatalf("run %d record %d: client seq %d step %d", i, r.Seq, r.ClientSeq, r.GetHistory().GetStep())
			}
		}
		if _, err := l.Verify(wal.VerifyOptions{SkipBoltCheck: true}, func(p wal.Problem) { t.Errorf("run %d: %v", i, p) }); err != nil {
			t.Fatal(err)
		}
		l.Close()
	}
}

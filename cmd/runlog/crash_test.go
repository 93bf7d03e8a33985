package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// crashRecord is the record with client sequence cs: a history row at step
// cs whose values are derived from cs, so its bytes can be checked later.
func crashRecord(cs uint64) []byte {
	items := make([]*runlogv1.Item, 10)
	for k := range items {
		items[k] = &runlogv1.Item{
			Key:   "m/" + strconv.Itoa(k),
			Value: &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: float64(cs)*0.5 + float64(k)}},
		}
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&runlogv1.Record{
		ClientId:  crashClient,
		ClientSeq: cs,
		Payload:   &runlogv1.Record_History{History: &runlogv1.HistoryRow{Step: int64(cs), Items: items}},
	})
	if err != nil {
		panic(err)
	}
	return b
}

const (
	crashRun    = "crash-run"
	crashClient = "crash-client"
)

// publishUntilKilled publishes records from next on until the stream
// breaks, and returns the highest client sequence the service acknowledged.
// An in-band error or rejection fails the test: the service was alive and
// refused good records.
func publishUntilKilled(t *testing.T, c runlogv1.RunlogClient, next uint64) (acked uint64) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := c.Publish(ctx)
	if err != nil {
		t.Fatalf("open publish stream: %v", err)
	}
	var (
		ackMu   sync.Mutex
		refused error
	)
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		for {
			resp, err := stream.Recv()
			if err != nil {
				return // the service died under the stream
			}
			ackMu.Lock()
			if resp.Error != nil {
				refused = fmt.Errorf("batch %d failed: %v", resp.Batch, resp.Error)
			} else if len(resp.Rejections) > 0 {
				refused = fmt.Errorf("batch %d: rejected %v", resp.Batch, resp.Rejections)
			}
			if resp.AckedClientSeq > acked {
				acked = resp.AckedClientSeq
			}
			ackMu.Unlock()
			if refused != nil {
				cancel()
				return
			}
		}
	}()
	const batch = 200
loop:
	for b := uint64(1); ; b++ {
		req := &runlogv1.PublishRequest{RunId: crashRun, ClientId: crashClient, Batch: b}
		for i := uint64(0); i < batch; i++ {
			req.Records = append(req.Records, crashRecord(next+i))
		}
		if err := stream.Send(req); err != nil {
			break
		}
		next += batch
		select {
		case <-recvDone:
			break loop
		default:
		}
	}
	<-recvDone
	ackMu.Lock()
	defer ackMu.Unlock()
	if refused != nil {
		t.Fatalf("publish: %v", refused)
	}
	return acked
}

// TestCrashAckedRecordsSurviveSIGKILL is the service's promise: every
// acknowledged record survives SIGKILL with its bytes, sequences stay
// gap-free, and resends after the restart are not written twice.
func TestCrashAckedRecordsSurviveSIGKILL(t *testing.T) {
	rounds := 20
	if os.Getenv("RUNLOG_SOAK") != "" {
		rounds = 300
	}
	if n, err := strconv.Atoi(os.Getenv("RUNLOG_CRASH_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	crashRounds(t, rounds)
}

func TestSoakCrash(t *testing.T) {
	if os.Getenv("RUNLOG_SOAK") == "" {
		t.Skip("set RUNLOG_SOAK=1 (make soak) for the long crash loop")
	}
	crashRounds(t, 1000)
}

func crashRounds(t *testing.T, rounds int) {
	root := filepath.Join(t.TempDir(), "root")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	var acked uint64 // highest client sequence the service ever acknowledged
	for round := 1; round <= rounds; round++ {
		svc := startService(t, root)
		_, c := dialService(t, svc.port.Unix)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		init, err := c.Init(ctx, &runlogv1.InitRequest{
			RunId: crashRun, Resume: runlogv1.ResumeMode_RESUME_MODE_ALLOW, ClientId: crashClient,
			Info: &runlogv1.RunInfo{Project: "crash"},
		})
		cancel()
		if err != nil {
			t.Fatalf("round %d: init: %v", round, err)
		}
		if init.AckedClientSeq < acked {
			t.Fatalf("round %d: service holds client seq %d durable, but %d was acknowledged before the kill",
				round, init.AckedClientSeq, acked)
		}
		// Resend a window of records that are already durable: the service
		// must drop them, not write them twice.
		from := init.AckedClientSeq + 1
		if back := uint64(rng.IntN(300)); back < from {
			from -= back
		} else {
			from = 1
		}
		delay := time.Duration(5+rng.IntN(150)) * time.Millisecond
		killer := time.AfterFunc(delay, svc.kill)
		a := publishUntilKilled(t, c, from)
		killer.Stop()
		svc.kill()
		if a > acked {
			acked = a
		}
	}
	if acked == 0 {
		t.Fatal("no record was acknowledged in any round: the test proves nothing")
	}

	// Final check on a clean service: the log holds exactly 1..N once each,
	// N >= every acknowledged sequence, with the bytes that were sent.
	svc := startService(t, root)
	_, c := dialService(t, svc.port.Unix)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // a soak leaves millions of records
	defer cancel()
	readStart := time.Now()
	stream, err := c.Read(ctx, &runlogv1.ReadRequest{RunId: crashRun})
	if err != nil {
		t.Fatal(err)
	}
	var seq, cs uint64
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read log: %v", err)
		}
		for _, r := range resp.Records {
			seq++
			if r.Seq != seq {
				t.Fatalf("record %d has seq %d: sequences are not gap-free", seq, r.Seq)
			}
			if r.ClientSeq == 0 {
				continue // run info written by the service
			}
			cs++
			if r.ClientSeq != cs {
				t.Fatalf("seq %d holds client seq %d, want %d (duplicate or lost record)", r.Seq, r.ClientSeq, cs)
			}
			got := proto.Clone(r).(*runlogv1.Record)
			got.Seq, got.Id, got.TimeUnixNano = 0, nil, 0
			b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(got)
			if string(b) != string(crashRecord(cs)) {
				t.Fatalf("seq %d (client seq %d): bytes differ from what was sent", r.Seq, cs)
			}
		}
	}
	if cs < acked {
		t.Fatalf("log holds client seqs 1..%d, but %d was acknowledged", cs, acked)
	}
	t.Logf("%d rounds: %d records acknowledged, %d in the log, read back in %s", rounds, acked, cs, time.Since(readStart))
}

package mux_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/runlog/runlog/mux"
	"github.com/runlog/runlog/mux/muxtest"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wire"
)

// encoder builds history records of 10 scalar keys the way a fast client
// does: the items are encoded once, each record appends its client_seq and
// step around them.
type encoder struct {
	items []byte
	arena []byte
}

func newEncoder(keys int) *encoder {
	row := &runlogv1.HistoryRow{}
	for k := range keys {
		row.Items = append(row.Items, &runlogv1.Item{Key: fmt.Sprintf("metric/%d", k),
			Value: &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: float64(k) + 0.5}}})
	}
	items, _ := proto.Marshal(row)
	return &encoder{items: items}
}

// batch returns n encoded records with client seqs and steps from seq.
func (e *encoder) batch(seq uint64, n int) [][]byte {
	out := make([][]byte, n)
	e.arena = e.arena[:0]
	if cap(e.arena) < n*(len(e.items)+32) {
		e.arena = make([]byte, 0, n*(len(e.items)+32))
	}
	for i := range out {
		start := len(e.arena)
		s := seq + uint64(i)
		e.arena = protowire.AppendTag(e.arena, wire.RecordClientSeq, protowire.VarintType)
		e.arena = protowire.AppendVarint(e.arena, s)
		e.arena = protowire.AppendTag(e.arena, wire.RecordHistory, protowire.BytesType)
		step := uint64(s - 1)
		e.arena = protowire.AppendVarint(e.arena, uint64(1+protowire.SizeVarint(step)+len(e.items)))
		e.arena = protowire.AppendTag(e.arena, wire.HistoryStep, protowire.VarintType)
		e.arena = protowire.AppendVarint(e.arena, step)
		e.arena = append(e.arena, e.items...)
		out[i] = e.arena[start:len(e.arena):len(e.arena)]
	}
	e.arena = e.arena[len(e.arena):] // the next batch must not overwrite this one while it is sent
	return out
}

// rssSampler records the process's peak resident memory while it runs.
type rssSampler struct {
	stop chan struct{}
	done chan struct{}
	max  int64 // KiB
}

func sampleRSS() *rssSampler {
	s := &rssSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if kb := vmRSS(); kb > s.max {
				s.max = kb
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) Stop() float64 {
	close(s.stop)
	<-s.done
	return float64(s.max) / 1024
}

func vmRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			n, _ := strconv.ParseInt(string(bytes.Fields(v)[0]), 10, 64)
			return n
		}
	}
	return 0
}

// BenchmarkPublish measures durable records/s through the service: each run
// has its own connection and stream (as separate client processes would),
// sends batches of 1000 ten-key history records and keeps 8 batches in
// flight. b.N is the total number of records. In process, the peak RSS is
// the client's and the service's together; with RUNLOG_BIN set, the
// service also runs as its own process (`runlog service`) and its peak RSS
// is reported alone.
func BenchmarkPublish(b *testing.B) {
	for _, runs := range []int{1, 8} {
		b.Run(fmt.Sprintf("runs=%d", runs), func(b *testing.B) {
			srv := muxtest.Start(b, mux.Options{Logger: slog.New(slog.DiscardHandler)})
			rss := sampleRSS()
			benchRuns(b, srv.UnixPath(), runs)
			b.ReportMetric(rss.Stop(), "peak-rss-MiB")
		})
	}
	bin := os.Getenv("RUNLOG_BIN")
	if bin == "" {
		return
	}
	for _, runs := range []int{1, 8} {
		b.Run(fmt.Sprintf("process/runs=%d", runs), func(b *testing.B) {
			socket, pid := startServiceProcess(b, bin)
			benchRuns(b, socket, runs)
			b.ReportMetric(peakRSS(b, pid), "service-peak-rss-MiB")
		})
	}
}

// benchRuns logs b.N records spread over runs runs in parallel.
func benchRuns(b *testing.B, socket string, runs int) {
	const batch, window = 1000, 8
	per := max(b.N/runs, 1)
	var wg sync.WaitGroup
	errs := make(chan error, runs)
	b.ResetTimer()
	for r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- publishRun(b, socket, fmt.Sprintf("bench-%d", r), per, batch, window, nil)
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(per*runs)/b.Elapsed().Seconds(), "records/s")
}

// startServiceProcess runs `bin service` on a temporary root until the
// benchmark ends and returns its socket and pid.
func startServiceProcess(b *testing.B, bin string) (string, int) {
	root := b.TempDir()
	portFile := filepath.Join(root, "port.json")
	cmd := exec.Command(bin, "service", "--root", root, "--port-file", portFile)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	b.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := <-exited; err != nil {
			b.Errorf("service: %v\n%s", err, stderr.String())
		}
	})
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		// The port file appears whole (renamed into place); its existence
		// is the event, and there is nothing to block on but polling.
		if data, err := os.ReadFile(portFile); err == nil {
			var pf struct {
				Unix string `json:"unix"`
			}
			if err := json.Unmarshal(data, &pf); err != nil {
				b.Fatalf("port file %q: %v", data, err)
			}
			return pf.Unix, cmd.Process.Pid
		}
		select {
		case err := <-exited:
			b.Fatalf("service exited: %v\n%s", err, stderr.String())
		case <-tick.C:
		}
	}
}

// peakRSS reads a process's peak resident memory (VmHWM) in MiB.
func peakRSS(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("VmHWM:")); ok {
			n, _ := strconv.ParseInt(string(bytes.Fields(v)[0]), 10, 64)
			return float64(n) / 1024
		}
	}
	b.Fatal("no VmHWM in /proc status")
	return 0
}

// publishRun logs n records to a new run over its own connection, with up to
// window batches in flight, and returns once all are acknowledged. With
// pace, batches are sent on its ticks; each batch's ack latency is passed to
// lat.
func publishRun(b *testing.B, socket, id string, n, batch, window int, pace *pacing) error {
	conn := muxtest.Dial(b, socket)
	defer conn.Close()
	c := runlogv1.NewRunlogClient(conn)
	ctx := b.Context()
	ir, err := c.Init(ctx, &runlogv1.InitRequest{RunId: id})
	if err != nil {
		return err
	}
	st, err := c.Publish(ctx)
	if err != nil {
		return err
	}
	enc := newEncoder(10)
	tokens := make(chan struct{}, window)
	sendErr := make(chan error, 1)
	var mu sync.Mutex
	sentAt := make(map[uint64]time.Time)
	go func() {
		sendErr <- func() error {
			for seq, nb := 1, uint64(0); seq <= n; nb++ {
				k := min(batch, n-seq+1)
				if pace != nil {
					<-pace.tick.C
				} else {
					tokens <- struct{}{}
				}
				req := &runlogv1.PublishRequest{RunId: id, ClientId: ir.ClientId, Batch: nb, Records: enc.batch(uint64(seq), k)}
				if pace != nil {
					mu.Lock()
					sentAt[nb] = time.Now()
					mu.Unlock()
				}
				if err := st.Send(req); err != nil {
					return err
				}
				seq += k
			}
			return st.CloseSend()
		}()
	}()
	for acked := uint64(0); acked < uint64(n); {
		resp, err := st.Recv()
		if err != nil {
			return fmt.Errorf("run %s: %w (acked %d of %d)", id, err, acked, n)
		}
		if resp.Error != nil || len(resp.Rejections) > 0 {
			return fmt.Errorf("run %s batch %d: %v", id, resp.Batch, resp)
		}
		acked = resp.AckedClientSeq
		if pace != nil {
			mu.Lock()
			pace.lat = append(pace.lat, time.Since(sentAt[resp.Batch]))
			delete(sentAt, resp.Batch)
			mu.Unlock()
		} else {
			<-tokens
		}
	}
	if err := <-sendErr; err != nil {
		return err
	}
	_, err = c.Finish(ctx, &runlogv1.FinishRequest{RunId: id, ClientId: ir.ClientId})
	return err
}

type pacing struct {
	tick *time.Ticker
	lat  []time.Duration
}

// BenchmarkAckLatency offers 10,000 records/s (a batch of 10 every
// millisecond, as a client flushing often at a modest rate would) and
// reports the ack latency of the batches.
func BenchmarkAckLatency(b *testing.B) {
	srv := muxtest.Start(b, mux.Options{Logger: slog.New(slog.DiscardHandler)})
	p := &pacing{tick: time.NewTicker(time.Millisecond)}
	defer p.tick.Stop()
	b.ResetTimer()
	if err := publishRun(b, srv.UnixPath(), "latency", b.N, 10, 1<<20, p); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	slices.Sort(p.lat)
	q := func(f float64) float64 {
		return float64(p.lat[int(f*float64(len(p.lat)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(1), "max-ms")
}

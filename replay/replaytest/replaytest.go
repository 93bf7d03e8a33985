// Package replaytest writes runs for tests and benchmarks of the replay
// package and the replay command: logs whose times and ids are the same on
// every run, so that their exports can be compared with golden files.
package replaytest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/root"
	"github.com/runlog/runlog/wal"
)

// Start is the time of the first record of a run written by this package.
var Start = time.Date(2026, 11, 27, 16, 42, 13, 0, time.UTC)

// Clock returns a clock that reads from, then moves on by step at every read.
func Clock(from time.Time, step time.Duration) func() time.Time {
	t := from.Add(-step)
	return func() time.Time {
		t = t.Add(step)
		return t
	}
}

// Options returns wal options with a fixed clock (Start, 1.5ms per append)
// and fixed ULID entropy.
func Options() wal.Options {
	return wal.Options{
		Now:     Clock(Start, 1500*time.Microsecond),
		Entropy: rand.NewPCG(0x7275, 0x6e6c6f67),
	}
}

// Open creates a log at path with Options. The caller closes it.
func Open(tb testing.TB, path string) *wal.Log {
	tb.Helper()
	l, err := wal.Open(path, Options())
	if err != nil {
		tb.Fatalf("open wal: %v", err)
	}
	return l
}

// RunPath returns where a run's log lives under dir, a root.
func RunPath(dir, runID string) string { return root.Dir(dir).Log(runID) }

// ExampleRunID is the id of the run Example writes.
const ExampleRunID = "run-example"

func dbl(k string, v float64) *runlogv1.Item {
	return &runlogv1.Item{Key: k, Value: &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: v}}}
}

func num(k string, v int64) *runlogv1.Item {
	return &runlogv1.Item{Key: k, Value: &runlogv1.Value{Kind: &runlogv1.Value_IntValue{IntValue: v}}}
}

func text(k, v string) *runlogv1.Item {
	return &runlogv1.Item{Key: k, Value: &runlogv1.Value{Kind: &runlogv1.Value_StringValue{StringValue: v}}}
}

// Example returns, in batches, the records of a small finished run that uses
// every kind of record: two clients, a rewind, values of every type (NaN
// included), console output, a file, stats, a metric definition, an alert and
// the exit. After it, the run has 10 live history rows (steps 0..9), config
// lr=0.01 batch=64 optimizer="adam", summary loss and best_acc, and exited
// with code 0.
func Example() [][]*runlogv1.Record {
	c1, c2 := "host-a-1", "host-a-2"
	var cs1, cs2 uint64
	rec := func(client string, p any) *runlogv1.Record {
		r := &runlogv1.Record{ClientId: client}
		switch client {
		case c1:
			cs1++
			r.ClientSeq = cs1
		case c2:
			cs2++
			r.ClientSeq = cs2
		}
		switch p := p.(type) {
		case *runlogv1.RunInfo:
			r.Payload = &runlogv1.Record_Run{Run: p}
		case *runlogv1.ConfigUpdate:
			r.Payload = &runlogv1.Record_Config{Config: p}
		case *runlogv1.HistoryRow:
			r.Payload = &runlogv1.Record_History{History: p}
		case *runlogv1.SummaryUpdate:
			r.Payload = &runlogv1.Record_Summary{Summary: p}
		case *runlogv1.ConsoleOutput:
			r.Payload = &runlogv1.Record_Output{Output: p}
		case *runlogv1.FileRef:
			r.Payload = &runlogv1.Record_File{File: p}
		case *runlogv1.SystemStats:
			r.Payload = &runlogv1.Record_Stats{Stats: p}
		case *runlogv1.MetricDefinition:
			r.Payload = &runlogv1.Record_Metric{Metric: p}
		case *runlogv1.Alert:
			r.Payload = &runlogv1.Record_Alert{Alert: p}
		case *runlogv1.Rewind:
			r.Payload = &runlogv1.Record_Rewind{Rewind: p}
		case *runlogv1.Exit:
			r.Payload = &runlogv1.Record_Exit{Exit: p}
		default:
			panic(fmt.Sprintf("replaytest: payload %T", p))
		}
		return r
	}
	row := func(step int64) *runlogv1.HistoryRow {
		items := []*runlogv1.Item{
			dbl("loss", 1/float64(step+2)),
			dbl("acc", 0.5+float64(step)/20),
			num("epoch", step/4),
		}
		if step == 3 {
			items = append(items, dbl("grad_norm", math.NaN()))
		}
		if step%5 == 0 {
			items = append(items, dbl("val/loss", 1/float64(step+3)), dbl("val/acc", 0.4+float64(step)/25))
		}
		return &runlogv1.HistoryRow{Step: step, Items: items}
	}
	var out [][]*runlogv1.Record
	out = append(out, []*runlogv1.Record{
		rec(c1, &runlogv1.RunInfo{Project: "mnist", Name: "baseline", Tags: []string{"cnn", "smoke"}, Host: "host-a", Program: "train.py", Args: []string{"--lr", "0.1"}}),
		rec(c1, &runlogv1.ConfigUpdate{Set: []*runlogv1.Item{dbl("lr", 0.1), num("batch", 64), text("optimizer", "adam"),
			{Key: "layers", Value: &runlogv1.Value{Kind: &runlogv1.Value_JsonValue{JsonValue: []byte(`[32,64,10]`)}}},
			{Key: "augment", Value: &runlogv1.Value{Kind: &runlogv1.Value_BoolValue{BoolValue: false}}},
		}}),
		rec(c1, &runlogv1.MetricDefinition{Name: "acc", Summary: runlogv1.MetricDefinition_SUMMARY_MAX, Goal: runlogv1.MetricDefinition_GOAL_MAXIMIZE}),
		rec(c1, &runlogv1.ConsoleOutput{Stream: runlogv1.ConsoleOutput_STREAM_STDOUT, Text: "epoch 0: starting\n"}),
	})
	var b []*runlogv1.Record
	for step := range int64(8) {
		b = append(b, rec(c1, row(step)))
	}
	out = append(out, b)
	out = append(out, []*runlogv1.Record{
		rec("", &runlogv1.SystemStats{Items: []*runlogv1.Item{dbl("cpu", 93.5), dbl("memory", 0.42), num("gpu.0.memory", 8<<30)}}),
		// The trainer restarts from its step-6 checkpoint under a new client.
		rec(c2, &runlogv1.Rewind{Step: 6}),
		rec(c2, &runlogv1.ConfigUpdate{Set: []*runlogv1.Item{dbl("lr", 0.01)}, Remove: []string{"augment", "layers"}}),
		rec(c2, &runlogv1.ConsoleOutput{Stream: runlogv1.ConsoleOutput_STREAM_STDERR, Text: "warning: resumed from checkpoint step 6 \"ckpt-6\"\n"}),
	})
	b = nil
	for step := int64(6); step < 10; step++ {
		b = append(b, rec(c2, row(step)))
	}
	out = append(out, b)
	out = append(out, []*runlogv1.Record{
		rec(c2, &runlogv1.SummaryUpdate{Set: []*runlogv1.Item{dbl("loss", 1.0/11), dbl("best_acc", 0.95), text("tmp", "x")}}),
		rec(c2, &runlogv1.SummaryUpdate{Remove: []string{"tmp"}}),
		rec(c2, &runlogv1.FileRef{Path: "model.pt", Size: 1 << 20, Sha256: []byte("0123456789abcdef0123456789abcdef"), MimeType: "application/octet-stream"}),
		rec(c2, &runlogv1.Alert{Title: "done", Text: "accuracy 0.95", Level: runlogv1.Alert_LEVEL_INFO}),
	})
	exit := rec("", &runlogv1.Exit{Code: 0, Reason: runlogv1.ExitReason_EXIT_REASON_FINISHED})
	exit.Synthesized = true
	out = append(out, []*runlogv1.Record{exit})
	return out
}

// WriteExample writes Example to a new log at path and closes it. It
// returns the number of records.
func WriteExample(tb testing.TB, path string) uint64 {
	tb.Helper()
	l := Open(tb, path)
	defer l.Close()
	for _, batch := range Example() {
		if err := l.Append(batch); err != nil {
			tb.Fatalf("append example: %v", err)
		}
	}
	return l.LastSeq()
}

// WriteHistory appends n history records with keys double values each to l,
// in batches of 1000, steps 0..n-1.
func WriteHistory(tb testing.TB, l *wal.Log, n, keys int) {
	tb.Helper()
	names := make([]string, keys)
	for k := range names {
		names[k] = fmt.Sprintf("metric/%d", k)
	}
	const batch = 1000
	recs := make([]*runlogv1.Record, batch)
	for i := 0; i < n; i += batch {
		m := min(batch, n-i)
		for j := range m {
			step := int64(i + j)
			items := make([]*runlogv1.Item, keys)
			for k := range items {
				items[k] = dbl(names[k], float64(step)*0.001+float64(k))
			}
			recs[j] = &runlogv1.Record{
				ClientId:  "bench",
				ClientSeq: uint64(step + 1),
				Payload:   &runlogv1.Record_History{History: &runlogv1.HistoryRow{Step: step, Items: items}},
			}
		}
		if err := l.Append(recs[:m]); err != nil {
			tb.Fatalf("append history: %v", err)
		}
	}
}

// Package webtest builds runs for tests and benchmarks of the web UI: the
// records a run's log would sync to a hub, with every kind of record the
// pages show.
package webtest

import (
	"context"
	"fmt"
	"math"
	"time"

	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// Run describes a generated run.
type Run struct {
	ID, Project, Name, Group string
	Tags                     []string
	Config                   map[string]any
	Summary                  map[string]any
	// Rows history rows at steps 0..Rows-1 with Keys keys ("train/loss",
	// "train/acc", "val/loss", then "metric/N").
	Rows, Keys int
	// Console lines, the last ones on stderr when Stderr is set.
	Console []string
	Stderr  []string
	Alerts  []string
	// Stats system samples.
	Stats int
	// Exit ends the run; nil leaves it running.
	Exit *runlogv1.Exit
	// Start is the first record's time; zero means 2026-01-01 10:00 UTC.
	Start time.Time
	// Speed scales how fast the curves fall and rise; zero means 1.
	Speed float64
}

// Appender is what the records go to: a hub's store.
type Appender interface {
	Append(ctx context.Context, runID string, records [][]byte) (uint64, error)
}

// Value converts a Go value to a record Value.
func Value(v any) *runlogv1.Value {
	switch x := v.(type) {
	case float64:
		return &runlogv1.Value{Kind: &runlogv1.Value_DoubleValue{DoubleValue: x}}
	case int:
		return &runlogv1.Value{Kind: &runlogv1.Value_IntValue{IntValue: int64(x)}}
	case bool:
		return &runlogv1.Value{Kind: &runlogv1.Value_BoolValue{BoolValue: x}}
	case string:
		return &runlogv1.Value{Kind: &runlogv1.Value_StringValue{StringValue: x}}
	case []byte:
		return &runlogv1.Value{Kind: &runlogv1.Value_JsonValue{JsonValue: x}}
	}
	panic(fmt.Sprintf("webtest: value %T", v))
}

func itemsOf(m map[string]any) []*runlogv1.Item {
	var out []*runlogv1.Item
	for k, v := range m {
		out = append(out, &runlogv1.Item{Key: k, Value: Value(v)})
	}
	return out
}

// KeyName is the name of history key k of a generated run.
func KeyName(k int) string {
	switch k {
	case 0:
		return "train/loss"
	case 1:
		return "train/acc"
	case 2:
		return "val/loss"
	}
	return fmt.Sprintf("metric/%d", k)
}

// KeyValue is the value of key k at step.
func KeyValue(k int, step int64) float64 {
	x := float64(step)
	switch k {
	case 0:
		return 2.5*math.Exp(-x/300) + 0.05 + 0.03*math.Sin(x/7)
	case 1:
		return 1 - 0.9*math.Exp(-x/250)
	case 2:
		return 2.6*math.Exp(-x/350) + 0.12
	}
	return float64(k) * x
}

// Writer appends a run's records in order, numbering them.
type Writer struct {
	ID    string
	Speed float64
	seq   uint64
	t     time.Time
	buf   [][]byte
	dest  Appender
}

// NewWriter returns a writer of run id into dest.
func NewWriter(dest Appender, id string, start time.Time) *Writer {
	if start.IsZero() {
		start = time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	}
	return &Writer{ID: id, t: start, dest: dest}
}

// Seq returns the last seq written.
func (w *Writer) Seq() uint64 { return w.seq }

// Add queues a record; Flush appends the queue.
func (w *Writer) Add(r *runlogv1.Record) {
	w.seq++
	w.t = w.t.Add(50 * time.Millisecond)
	r.Seq = w.seq
	r.TimeUnixNano = w.t.UnixNano()
	if r.ClientId == "" {
		r.ClientId = "webtest"
	}
	r.ClientSeq = w.seq
	data, err := proto.Marshal(r)
	if err != nil {
		panic(err)
	}
	w.buf = append(w.buf, data)
}

// Flush appends what was queued.
func (w *Writer) Flush(ctx context.Context) error {
	for len(w.buf) > 0 {
		n := min(len(w.buf), 4096)
		if _, err := w.dest.Append(ctx, w.ID, w.buf[:n]); err != nil {
			return fmt.Errorf("append run %s: %w", w.ID, err)
		}
		w.buf = w.buf[n:]
	}
	w.buf = nil
	return nil
}

// Rows queues history rows at steps from..from+n-1 with keys keys.
func (w *Writer) Rows(from int64, n, keys int) {
	for i := 0; i < n; i++ {
		step := from + int64(i)
		items := make([]*runlogv1.Item, keys)
		for k := range items {
			v := KeyValue(k, step)
			if w.Speed > 0 && k < 3 {
				v = KeyValue(k, int64(float64(step)*w.Speed))
			}
			items[k] = &runlogv1.Item{Key: KeyName(k), Value: Value(v)}
		}
		w.Add(&runlogv1.Record{Payload: &runlogv1.Record_History{History: &runlogv1.HistoryRow{Step: step, Items: items}}})
	}
}

// Write appends the whole run.
func Write(ctx context.Context, dest Appender, r Run) (*Writer, error) {
	w := NewWriter(dest, r.ID, r.Start)
	w.Speed = r.Speed
	w.Add(&runlogv1.Record{Payload: &runlogv1.Record_Run{Run: &runlogv1.RunInfo{
		Project: r.Project, Name: r.Name, Group: r.Group, Tags: r.Tags, Host: "gpu-node-3",
		Program: "train.py", Args: []string{"--epochs", "10"}, StartTimeUnixNano: w.t.UnixNano(),
	}}})
	if len(r.Config) > 0 {
		w.Add(&runlogv1.Record{Payload: &runlogv1.Record_Config{Config: &runlogv1.ConfigUpdate{Set: itemsOf(r.Config)}}})
	}
	for _, l := range r.Console {
		w.Add(&runlogv1.Record{Payload: &runlogv1.Record_Output{Output: &runlogv1.ConsoleOutput{Stream: runlogv1.ConsoleOutput_STREAM_STDOUT, Text: l + "\n"}}})
	}
	keys := r.Keys
	if keys == 0 {
		keys = 3
	}
	for i := 0; i < r.Stats; i++ {
		w.Add(&runlogv1.Record{Payload: &runlogv1.Record_Stats{Stats: &runlogv1.SystemStats{Items: []*runlogv1.Item{
			{Key: "cpu", Value: Value(40 + 20*math.Sin(float64(i)/5))},
			{Key: "gpu.0.util", Value: Value(85 + 10*math.Cos(float64(i)/3))},
		}}}})
	}
	w.Rows(0, r.Rows, keys)
	for _, a := range r.Alerts {
		w.Add(&runlogv1.Record{Payload: &runlogv1.Record_Alert{Alert: &runlogv1.Alert{Title: a, Text: "loss plateaued", Level: runlogv1.Alert_LEVEL_WARN}}})
	}
	for _, l := range r.Stderr {
		w.Add(&runlogv1.Record{Payload: &runlogv1.Record_Output{Output: &runlogv1.ConsoleOutput{Stream: runlogv1.ConsoleOutput_STREAM_STDERR, Text: l + "\n"}}})
	}
	if len(r.Summary) > 0 {
		w.Add(&runlogv1.Record{Payload: &runlogv1.Record_Summary{Summary: &runlogv1.SummaryUpdate{Set: itemsOf(r.Summary)}}})
	}
	if r.Exit != nil {
		w.Add(&runlogv1.Record{Payload: &runlogv1.Record_Exit{Exit: r.Exit}})
	}
	return w, w.Flush(ctx)
}

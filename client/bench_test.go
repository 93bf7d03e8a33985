package client

import (
	"context"
	"fmt"
	"testing"
)

var benchKeys = func() []string {
	keys := make([]string, 10)
	for i := range keys {
		keys[i] = fmt.Sprintf("train/metric_%d", i)
	}
	return keys
}()

// BenchmarkEncodeHistory is the encoding share of a Log call: 10 float keys.
func BenchmarkEncodeHistory(b *testing.B) {
	fields := make([]field, len(benchKeys))
	for i, k := range benchKeys {
		fields[i] = field{key: k, kind: kindDouble, num: uint64(i)}
	}
	var w window
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		total, body := historySize("host-12345-abcdef01", uint64(i+1), int64(i), fields)
		appendHistory(w.alloc(total), "host-12345-abcdef01", uint64(i+1), int64(i), fields, body)
	}
}

// benchRun opens a run on an in-process fake service that acks at once.
// The figures include the fake's own work on the same cores.
func benchRun(b *testing.B) *Run {
	f := &fake{sock: b.TempDir() + "/s.sock", runs: make(map[string]*fakeRun), cheap: true}
	t := &testing.T{}
	f.start(t)
	b.Cleanup(f.stop)
	c, err := Connect(context.Background(), Options{Root: b.TempDir(), Address: f.addr(), NoStart: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	r, err := c.Init(context.Background(), RunOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// BenchmarkLogFloats is the typed Log path end to end: encode, window,
// batch, send, ack. ns/op is the per-record cost of the whole pipeline.
func BenchmarkLogFloats(b *testing.B) {
	r := benchRun(b)
	vals := make([]float64, len(benchKeys))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		vals[0] = float64(i)
		if err := r.LogFloats(int64(i), benchKeys, vals); err != nil {
			b.Fatal(err)
		}
	}
	if err := r.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkLogMap is Log with a map of 10 float values.
func BenchmarkLogMap(b *testing.B) {
	r := benchRun(b)
	m := make(map[string]any, len(benchKeys))
	for i, k := range benchKeys {
		m[k] = float64(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := r.Log(int64(i), m); err != nil {
			b.Fatal(err)
		}
	}
	if err := r.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
}

package wal

import (
	"maps"
	"testing"
)

func TestUpstreamCursors(t *testing.T) {
	got := UpstreamCursors(map[string]uint64{
		"upstream:grpc://a:1": 7, "upstream:grpcs://b:2": 0, "export": 9,
	})
	want := map[string]uint64{"grpc://a:1": 7, "grpcs://b:2": 0}
	if !maps.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got := UpstreamCursors(map[string]uint64{"export": 1}); got != nil {
		t.Fatalf("no upstream: got %v, want nil", got)
	}
}

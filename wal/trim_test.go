package wal_test

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wal"
	"github.com/runlog/runlog/wal/waltest"
)

// rssFile returns the process's file-backed resident memory in bytes.
func rssFile(t *testing.T) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("RssFile:")); ok {
			kb, err := strconv.ParseInt(string(bytes.Fields(v)[0]), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Skip("no RssFile in /proc/self/status")
	return 0
}

// Writing and scanning a large log must not leave the whole file mapped in
// the process: the log releases its mapped pages as it goes.
func TestMappedPagesAreReleased(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("releasing mapped pages is Linux-only")
	}
	l := waltest.Open(t)
	body := body(t, &runlogv1.Record{Payload: &runlogv1.Record_Output{Output: &runlogv1.ConsoleOutput{Text: strings.Repeat("z", 4000)}}})
	batch := make([]wal.Encoded, 256)
	for i := range batch {
		batch[i] = wal.Encoded{Body: body}
	}
	before := rssFile(t)
	const total = 96 << 20
	for written := 0; written < total; written += len(batch) * len(body) {
		if _, err := l.AppendEncoded(batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Scan(1, func(uint64, []byte) error { return nil }); err != nil {
		t.Fatal(err)
	}
	// Without releasing, roughly a sixth of the file stays mapped (the
	// kernel maps pages around every fault), and a full scan maps all of it.
	if grew := rssFile(t) - before; grew > 16<<20 {
		t.Fatalf("file-backed resident memory grew by %d MiB over a %d MiB log", grew>>20, total>>20)
	}
}

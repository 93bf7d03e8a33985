package mux_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/runlog/runlog/mux"
	"github.com/runlog/runlog/mux/muxtest"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
)

// mountTmpfs mounts a tmpfs of size bytes and unmounts it on cleanup. Where
// mounting is not permitted it skips the test, except under CI=true: there a
// disk-full test that did not run is a failure, not a pass.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("disk-full test needs to mount a small tmpfs (as root): mount: %v: %s", err, strings.TrimSpace(string(out)))
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s (CI=true: run it as root where mount works)", msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file until the file system is full and returns it.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", dir, err)
			}
			return path
		}
	}
}

func TestDiskFullIsResourceExhaustedAndRecovers(t *testing.T) {
	checkLeaks(t)
	dir := mountTmpfs(t, "8m")
	srv := muxtest.StartAt(t, filepath.Join(dir, "root"), mux.Options{})
	c := srv.Client
	ir := initRun(t, c, &runlogv1.InitRequest{RunId: "full"})
	st := openStream(t, c)
	output := func(seq uint64) []byte {
		return muxtest.Encode(t, &runlogv1.Record{ClientSeq: seq, Payload: &runlogv1.Record_Output{
			Output: &runlogv1.ConsoleOutput{Text: strings.Repeat("y", 4000)}}})
	}
	batch := func(first uint64, n int) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			out[i] = output(first + uint64(i))
		}
		return out
	}
	resp := send(t, st, &runlogv1.PublishRequest{RunId: "full", ClientId: ir.ClientId, Batch: 1, Records: batch(1, 10)})
	if resp.Error != nil || resp.AckedClientSeq != 10 {
		t.Fatalf("before the disk filled: %v", resp)
	}

	filler := fill(t, dir)
	a := &runlogv1.PublishRequest{RunId: "full", ClientId: ir.ClientId, Batch: 2, Records: batch(11, 100)}
	resp = send(t, st, a)
	wantProtoError(t, resp.Error, codes.ResourceExhausted, "no space left on device")
	if resp.AckedClientSeq != 10 || resp.LastSeq != 11 || len(resp.Rejections) != 0 {
		t.Fatalf("full disk answer acknowledges something: %v", resp)
	}
	// A later batch may not jump the hole the failed one left.
	b := &runlogv1.PublishRequest{RunId: "full", ClientId: ir.ClientId, Batch: 3, Records: batch(111, 10)}
	resp = send(t, st, b)
	wantProtoError(t, resp.Error, codes.Unavailable, "resend them before client_seq 111")
	if resp.AckedClientSeq != 10 {
		t.Fatalf("refused batch acknowledges something: %v", resp)
	}

	// Space returns: the retried batches go through, in order.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for _, req := range []*runlogv1.PublishRequest{a, b} {
		resp = send(t, st, req)
		if resp.Error != nil || len(resp.Rejections) != 0 {
			t.Fatalf("retry of batch %d: %v", req.Batch, resp)
		}
	}
	if resp.AckedClientSeq != 120 || resp.LastSeq != 121 {
		t.Fatalf("after the retries: acked %d last seq %d, want 120 and 121", resp.AckedClientSeq, resp.LastSeq)
	}
	recs := readAll(t, c, "full")
	if len(recs) != 121 {
		t.Fatalf("%d records, want 121", len(recs))
	}
	for i, r := range recs[1:] {
		if r.ClientSeq != uint64(i+1) {
			t.Fatalf("record %d has client seq %d", r.Seq, r.ClientSeq)
		}
	}
	v, err := c.Verify(ctxT(t), &runlogv1.VerifyRequest{RunId: "full"})
	if err != nil || len(v.Problems) != 0 || v.Records != 121 {
		t.Fatalf("Verify after the full disk: %v, %v", v, err)
	}
	fin, err := c.Finish(ctxT(t), &runlogv1.FinishRequest{RunId: "full", ClientId: ir.ClientId})
	if err != nil || !fin.Closed {
		t.Fatalf("Finish: %v, %v", fin, err)
	}
}

// A batch whose only new record is refused on arrival must not carry the
// client's high-water over records a failed commit left unwritten: the
// client would drop them from its window as acknowledged.
func TestRefusedRecordDoesNotAckOverAFailedCommit(t *testing.T) {
	checkLeaks(t)
	dir := mountTmpfs(t, "8m")
	srv := muxtest.StartAt(t, filepath.Join(dir, "root"), mux.Options{})
	c := srv.Client
	ir := initRun(t, c, &runlogv1.InitRequest{RunId: "hole"})
	st := openStream(t, c)
	batch := func(first uint64, n int) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			out[i] = muxtest.Encode(t, &runlogv1.Record{ClientSeq: first + uint64(i), Payload: &runlogv1.Record_Output{
				Output: &runlogv1.ConsoleOutput{Text: strings.Repeat("z", 4000)}}})
		}
		return out
	}
	resp := send(t, st, &runlogv1.PublishRequest{RunId: "hole", ClientId: ir.ClientId, Batch: 1, Records: batch(1, 10)})
	if resp.Error != nil || resp.AckedClientSeq != 10 {
		t.Fatalf("before the disk filled: %v", resp)
	}

	filler := fill(t, dir)
	a := &runlogv1.PublishRequest{RunId: "hole", ClientId: ir.ClientId, Batch: 2, Records: batch(11, 100)}
	resp = send(t, st, a)
	wantProtoError(t, resp.Error, codes.ResourceExhausted, "no space left on device")
	bad := &runlogv1.PublishRequest{RunId: "hole", ClientId: ir.ClientId, Batch: 3, Records: [][]byte{rawHistory(111, 0, "")}}
	resp = send(t, st, bad)
	wantProtoError(t, resp.Error, codes.Unavailable, "resend them before client_seq 111")
	if resp.AckedClientSeq != 10 {
		t.Fatalf("a refused record acknowledged the unwritten client_seq 11 to 110: %v", resp)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if resp = send(t, st, a); resp.Error != nil || resp.AckedClientSeq != 110 {
		t.Fatalf("retry of batch 2: %v", resp)
	}
	resp = send(t, st, bad)
	if resp.Error != nil || len(resp.Rejections) != 1 || resp.AckedClientSeq != 111 {
		t.Fatalf("retry of batch 3: %v", resp)
	}
	wantProtoError(t, resp.Rejections[0].Error, codes.InvalidArgument, `history key "" is empty`)
	if recs := readAll(t, c, "hole"); len(recs) != 111 {
		t.Fatalf("%d records, want 111", len(recs))
	}
}

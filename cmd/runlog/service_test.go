package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wal"
)

func TestServiceCommand(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	svc := startService(t, root, "--listen", "tcp://127.0.0.1:0", "--max-record-bytes", "2000")
	pi, portFile := svc.port, svc.portFile
	if pi.PID != svc.cmd.Process.Pid || pi.Unix != rootAt(root).Socket() || !strings.HasPrefix(pi.TCP, "127.0.0.1:") {
		t.Fatalf("port file %+v (pid %d)", pi, svc.cmd.Process.Pid)
	}

	// A second service on the root fails and names the first.
	second := start(t, "service", "--root", root)
	if code := second.wait(); code != 1 {
		t.Fatalf("second service exited %d, want 1", code)
	}
	msg := second.stderr.String()
	if !strings.Contains(msg, fmt.Sprintf("pid %d", pi.PID)) || !strings.Contains(msg, pi.Unix) {
		t.Fatalf("second service says %q; want the running pid and socket", msg)
	}

	// Log through the TCP listener, with the record limit from the flag.
	conn, err := grpc.NewClient(pi.TCP, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := runlogv1.NewRunlogClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ir, err := c.Init(ctx, &runlogv1.InitRequest{RunId: "cmd", ClientPid: int64(os.Getpid())})
	if err != nil {
		t.Fatal(err)
	}
	if ir.MaxRecordBytes != 2000 {
		t.Fatalf("max_record_bytes %d, want 2000", ir.MaxRecordBytes)
	}
	st, err := c.Publish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var recs [][]byte
	for i := range 50 {
		b, _ := proto.Marshal(&runlogv1.Record{ClientSeq: uint64(i + 1), Payload: &runlogv1.Record_Output{
			Output: &runlogv1.ConsoleOutput{Text: strings.Repeat("o", 100*(i%30))}}})
		recs = append(recs, b)
	}
	if err := st.Send(&runlogv1.PublishRequest{RunId: "cmd", ClientId: ir.ClientId, Batch: 1, Records: recs}); err != nil {
		t.Fatal(err)
	}
	resp, err := st.Recv()
	if err != nil || resp.Error != nil || resp.AckedClientSeq != 50 {
		t.Fatalf("publish: %v, %v", resp, err)
	}
	tooBig := 0
	for _, rj := range resp.Rejections {
		if !strings.Contains(rj.Error.Message, "exceeds the limit of 2000") {
			t.Fatalf("rejection %v", rj)
		}
		tooBig++
	}
	if tooBig == 0 {
		t.Fatal("no record over --max-record-bytes was refused")
	}

	// SIGTERM drains: exit 0, socket, lock and port file gone, records there.
	if err := svc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := svc.wait(); code != 0 {
		t.Fatalf("SIGTERM: exit %d\n%s", code, svc.stderr)
	}
	for _, f := range []string{portFile, pi.Unix, rootAt(root).Lock()} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s remains after SIGTERM (%v)", f, err)
		}
	}
	l, err := wal.Open(ir.Path, wal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := l.LastSeq(); got != uint64(1+50-tooBig) {
		t.Fatalf("log holds %d records, want %d", got, 1+50-tooBig)
	}
}

func TestServiceExitsWithItsParent(t *testing.T) {
	parent := exec.Command("sleep", "600")
	if err := parent.Start(); err != nil {
		t.Skipf("cannot start a parent process: %v", err)
	}
	parentDone := make(chan struct{})
	go func() { parent.Wait(); close(parentDone) }()
	t.Cleanup(func() { parent.Process.Kill(); <-parentDone })

	root := t.TempDir()
	svc := startService(t, root, "--parent-pid", fmt.Sprint(parent.Process.Pid))
	parent.Process.Kill()
	<-parentDone
	if code := svc.wait(); code != 0 {
		t.Fatalf("exit %d after the parent left\n%s", code, svc.stderr)
	}
	if !strings.Contains(svc.stderr.String(), "parent process") {
		t.Fatalf("log does not say why it exited:\n%s", svc.stderr)
	}
}

func TestServiceHelpAndBadFlags(t *testing.T) {
	var buf bytes.Buffer
	if _, err := parseServiceFlags([]string{"--help"}, &buf); err == nil {
		t.Fatal("--help parsed as a run")
	}
	for _, f := range []string{"-root", "-listen", "-port-file", "-parent-pid", "-max-record-bytes", "-crash-grace",
		"-offline", "-upstream", "-upstream-token-file", "SIGTERM"} {
		if !strings.Contains(buf.String(), f) {
			t.Errorf("--help does not explain %s:\n%s", f, buf.String())
		}
	}
	for _, args := range [][]string{
		{"--max-record-bytes", "0"},
		{"--crash-grace", "-1s"},
		{"--offline", "--upstream", "grpc://h:1"},
		{"extra"},
	} {
		if _, err := parseServiceFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("flags %q accepted", args)
		}
	}
	t.Setenv("RUNLOG_DIR", "/from/env")
	c, err := parseServiceFlags(nil, &bytes.Buffer{})
	if err != nil || c.root != "/from/env" {
		t.Fatalf("root %q, %v; want $RUNLOG_DIR", c.root, err)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wal"
)

// serviceTestBin returns the runlog binary: $RUNLOG_BIN, or one built once
// for these tests.
func serviceTestBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("RUNLOG_BIN"); p != "" {
		return p
	}
	serviceBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "runlog-service-test-")
		if err != nil {
			serviceBinErr = err
			return
		}
		serviceBin = filepath.Join(dir, "runlog")
		if out, err := exec.Command("go", "build", "-o", serviceBin, ".").CombinedOutput(); err != nil {
			serviceBinErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if serviceBinErr != nil {
		t.Fatal(serviceBinErr)
	}
	return serviceBin
}

var (
	serviceBinOnce sync.Once
	serviceBin     string
	serviceBinErr  error
)

// svcProc is a `runlog service` process under test.
type svcProc struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	exited chan struct{}
	err    error // Wait's result, set before exited closes
}

func startSvc(t *testing.T, args ...string) *svcProc {
	t.Helper()
	p := &svcProc{cmd: exec.Command(serviceTestBin(t), append([]string{"service"}, args...)...),
		stderr: &bytes.Buffer{}, exited: make(chan struct{})}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// wait waits for the process to exit and returns its exit code.
func (p *svcProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("service still running after 30s; stderr:\n%s", p.stderr)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

type portInfo struct {
	PID  int    `json:"pid"`
	Unix string `json:"unix"`
	TCP  string `json:"tcp"`
}

// awaitPortFile waits for the port file the service writes once it listens.
func (p *svcProc) awaitPortFile(t *testing.T, path string) portInfo {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for {
		// The file appears whole; there is no event but its existence.
		if data, err := os.ReadFile(path); err == nil {
			var pi portInfo
			if err := json.Unmarshal(data, &pi); err != nil {
				t.Fatalf("port file %q: %v", data, err)
			}
			return pi
		}
		select {
		case <-p.exited:
			t.Fatalf("service exited before writing its port file: %v\n%s", p.err, p.stderr)
		case <-deadline:
			t.Fatalf("no port file after 30s\n%s", p.stderr)
		case <-tick.C:
		}
	}
}

func TestServiceCommand(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	portFile := filepath.Join(t.TempDir(), "port.json")
	svc := startSvc(t, "--root", root, "--port-file", portFile, "--listen", "tcp://127.0.0.1:0", "--max-record-bytes", "2000")
	pi := svc.awaitPortFile(t, portFile)
	if pi.PID != svc.cmd.Process.Pid || pi.Unix != filepath.Join(root, "service.sock") || !strings.HasPrefix(pi.TCP, "127.0.0.1:") {
		t.Fatalf("port file %+v (pid %d)", pi, svc.cmd.Process.Pid)
	}

	// A second service on the root fails and names the first.
	second := startSvc(t, "--root", root)
	if code := second.wait(t); code != 1 {
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
	if code := svc.wait(t); code != 0 {
		t.Fatalf("SIGTERM: exit %d\n%s", code, svc.stderr)
	}
	for _, f := range []string{portFile, pi.Unix, filepath.Join(root, "service.lock")} {
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
	portFile := filepath.Join(t.TempDir(), "port.json")
	svc := startSvc(t, "--root", root, "--port-file", portFile, "--parent-pid", fmt.Sprint(parent.Process.Pid))
	svc.awaitPortFile(t, portFile)
	parent.Process.Kill()
	<-parentDone
	if code := svc.wait(t); code != 0 {
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

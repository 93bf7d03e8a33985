package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/runlog/runlog/client"
	"github.com/runlog/runlog/mux"
	"github.com/runlog/runlog/mux/muxtest"
	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/store/storetest"
)

// nobody is a uid that is not the test's: a root another user owns.
const nobody = 65534

// needRoot skips tests that chown to another user unless the test runs
// as root, and fails instead under CI=true, where it must.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test chowns files to another user and must run as root under CI=true")
	}
	t.Skip("needs root to chown files to another user")
}

// openRefused opens a service on dir and returns the error it must fail
// with.
func openRefused(t *testing.T, dir string) error {
	t.Helper()
	svc, err := mux.Open(dir, mux.Options{Logger: muxtest.Logger(t)})
	if err == nil {
		svc.Close()
		t.Fatalf("service opened root %s", dir)
	}
	return err
}

func TestServiceRefusesRootOfAnotherUser(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	err := openRefused(t, dir)
	if msg := err.Error(); !strings.Contains(msg, "uid 65534") || !strings.Contains(msg, "chown -R 0 "+dir) {
		t.Fatalf("refusal does not name the owner and the fix: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "runs")); !os.IsNotExist(err) {
		t.Fatalf("the refused root was written to: %v", err)
	}
}

func TestServiceRefusesGroupWritableRoot(t *testing.T) {
	for _, mode := range []os.FileMode{0o770, 0o702, 0o777} {
		dir := t.TempDir()
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		err := openRefused(t, dir)
		if !strings.Contains(err.Error(), "chmod 700 "+dir) {
			t.Fatalf("mode %v: refusal does not say how to fix it: %v", mode, err)
		}
	}
	// ROOT/runs is held to the same rule.
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "runs"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "runs"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := openRefused(t, dir); !strings.Contains(err.Error(), "chmod 700 "+filepath.Join(dir, "runs")) {
		t.Fatalf("writable runs directory: %v", err)
	}
	// Readable by others is allowed (with a warning); writable is not.
	ok := t.TempDir()
	if err := os.Chmod(ok, 0o755); err != nil {
		t.Fatal(err)
	}
	muxtest.StartAt(t, ok, mux.Options{})
}

// plantSocket listens on a unix socket at path owned by uid, as another
// user's process would after replacing the service's socket.
func plantSocket(t *testing.T, path string, uid int) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	t.Cleanup(func() { ln.Close() })
	if err := os.Lchown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
}

func TestReplacedSocketIsRefused(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "service.sock")
	plantSocket(t, sock, nobody)

	// A service does not take over the root around it...
	if err := openRefused(t, dir); !strings.Contains(err.Error(), "belongs to uid 65534") || !strings.Contains(err.Error(), "rm "+sock) {
		t.Fatalf("service: %v", err)
	}
	// ...and a client neither logs to it nor starts a service beside it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := client.Connect(ctx, client.Options{Root: dir, Address: "unix://" + sock, NoStart: true})
	if err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Fatalf("client with the socket's address: %v", err)
	}
	_, err = client.Connect(ctx, client.Options{Root: dir, Binary: bin(t)})
	if err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Fatalf("client of the root: %v", err)
	}
	// A link in the socket's place is no better.
	link := t.TempDir()
	if err := os.Symlink(sock, filepath.Join(link, "service.sock")); err != nil {
		t.Fatal(err)
	}
	if err := openRefused(t, link); !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("service over a linked socket: %v", err)
	}
}

// symlinkedRun makes ROOT/runs/ID a link to a directory outside the root
// that holds a run's log, and returns that log.
func symlinkedRun(t *testing.T, dir, id string) string {
	t.Helper()
	elsewhere := t.TempDir()
	target := makeRun(t, elsewhere, id, storetest.Run{Rows: 20, Keys: 2, Exit: exitFinished})
	if err := os.MkdirAll(filepath.Join(dir, "runs"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Dir(target), filepath.Join(dir, "runs", id)); err != nil {
		t.Fatal(err)
	}
	return target
}

// unchanged fails the test when the file at path is not what it was.
func unchanged(t *testing.T, path string, was []byte) {
	t.Helper()
	now, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(now, was) {
		t.Fatalf("%s was written through a symlink under the root", path)
	}
}

func TestSymlinkedRunIsRefusedEverywhere(t *testing.T) {
	dir := t.TempDir()
	makeRun(t, dir, "mine", storetest.Run{Rows: 20, Keys: 2, Exit: exitFinished})
	target := symlinkedRun(t, dir, "linked")
	was, err := os.ReadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	// A real run directory whose log is a link.
	if err := os.MkdirAll(filepath.Join(dir, "runs", "loglink"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "runs", "loglink", "wal.bolt")); err != nil {
		t.Fatal(err)
	}
	// An empty directory another user prepared for the service to write.
	trap := t.TempDir()
	if err := os.Symlink(trap, filepath.Join(dir, "runs", "planted")); err != nil {
		t.Fatal(err)
	}

	t.Run("runs", func(t *testing.T) {
		var out, errOut bytes.Buffer
		if code := runRuns([]string{"--root", dir, "--json"}, &out, &errOut); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
		var rows []runRow
		if err := json.Unmarshal(out.Bytes(), &rows); err != nil {
			t.Fatalf("json: %v\n%s", err, out.String())
		}
		checkListed(t, rows)
	})
	t.Run("replay", func(t *testing.T) {
		for _, id := range []string{"linked", "loglink"} {
			stdout, stderr, code := runReplay(t, "--root", dir, id)
			if code == 0 || !strings.Contains(stderr, "symlink") || stdout != "" {
				t.Fatalf("replay %s: exit %d, stderr %q, stdout %d bytes", id, code, stderr, len(stdout))
			}
		}
		stdout, _, code := runReplay(t, "--root", dir, "--verify", "--all")
		if code == 0 || !strings.Contains(stdout, "linked: cannot verify: refusing") || !strings.Contains(stdout, "mine: clean") {
			t.Fatalf("replay --verify --all: exit %d:\n%s", code, stdout)
		}
	})
	t.Run("sync", func(t *testing.T) {
		h := startHub(t)
		code, rep, stderr := syncJSONRun(t, "--root", dir, "--upstream", h.URL, "linked")
		if code == 0 || rep.OK || len(rep.Runs) != 1 || !strings.Contains(rep.Runs[0].Error, "symlink") || rep.RecordsSent != 0 {
			t.Fatalf("sync linked: exit %d, %+v\n%s", code, rep, stderr)
		}
		code, rep, stderr = syncJSONRun(t, "--root", dir, "--upstream", h.URL, "--all")
		if code == 0 || rep.Synced != 1 || rep.Failed != 3 {
			t.Fatalf("sync --all: exit %d, %+v\n%s", code, rep, stderr)
		}
		unchanged(t, target, was)
	})
	t.Run("service", func(t *testing.T) {
		srv := muxtest.StartAt(t, dir, mux.Options{}) // the startup scan opens none of them
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, id := range []string{"linked", "loglink", "planted"} {
			_, err := srv.Client.Init(ctx, &runlogv1.InitRequest{RunId: id, Resume: runlogv1.ResumeMode_RESUME_MODE_ALLOW})
			if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "symlink") {
				t.Fatalf("Init %s: %v", id, err)
			}
		}
		if ents, _ := os.ReadDir(trap); len(ents) != 0 {
			t.Fatalf("Init wrote %d files into a directory linked from the root", len(ents))
		}
		resp, err := srv.Client.ListRuns(ctx, &runlogv1.ListRunsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var rows []runRow
		for _, s := range resp.GetRuns() {
			rows = append(rows, runRow{ID: s.GetRunId(), Error: s.GetError()})
		}
		checkListed(t, rows)
		// Reads through the service are refused too.
		st, err := srv.Client.Read(ctx, &runlogv1.ReadRequest{RunId: "linked", FromSeq: 1})
		if err == nil {
			_, err = st.Recv()
		}
		if status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("Read of a linked run: %v", err)
		}
		unchanged(t, target, was)
	})
}

// checkListed checks that a listing shows the real run and each link with
// the reason it is refused.
func checkListed(t *testing.T, rows []runRow) {
	t.Helper()
	got := map[string]string{}
	for _, r := range rows {
		got[r.ID] = r.Error
	}
	if e, ok := got["mine"]; !ok || e != "" {
		t.Fatalf("the real run is missing or has an error: %+v", rows)
	}
	for _, id := range []string{"linked", "loglink", "planted"} {
		if !strings.Contains(got[id], "symlink") {
			t.Fatalf("run %s is not listed as a refused symlink: %+v", id, rows)
		}
	}
}

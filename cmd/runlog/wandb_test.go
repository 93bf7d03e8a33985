package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	wandbv1 "github.com/runlog/runlog/proto/wandb/v1"
	"github.com/runlog/runlog/replay"
	"github.com/runlog/runlog/wal"
	"github.com/runlog/runlog/wandbwire"
)

// wandbPython is the interpreter with wandb==0.31.0 that make test
// installs into .venv. Without it the test skips, and fails under CI=true.
func wandbPython(t *testing.T) string {
	t.Helper()
	py := os.Getenv("RUNLOG_WANDB_PYTHON")
	if py == "" {
		py, _ = filepath.Abs("../../.venv/bin/python")
	}
	out, err := exec.Command(py, "-c", "import wandb; print(wandb.__version__)").Output()
	if err != nil || strings.TrimSpace(string(out)) != "0.31.0" {
		msg := fmt.Sprintf("wandb 0.31.0 not importable by %s (%v, %q); run make test, which installs it", py, err, out)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return py
}

// runWandbScript runs testdata/wandb/script.py offline with extra env and
// returns its stdout.
func runWandbScript(t *testing.T, py, dir string, env ...string) (string, error) {
	t.Helper()
	script, _ := filepath.Abs("testdata/wandb/script.py")
	cmd := exec.Command(py, script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "WANDB_MODE=offline", "WANDB_SILENT=true", "WANDB_DIR="+dir, "WANDB_DISABLE_GIT=true")
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%w: %s", err, stderr.String())
	}
	return stdout.String(), err
}

// wandbView is what a run holds, in a form both sides fold to: rows by
// step (items without wandb's own _step and _runtime), config, summary
// (the updates the script made) and console text.
type wandbView struct {
	rows    map[int64]map[string]any
	config  map[string]any
	summary map[string]any
	output  string
}

func newView() *wandbView {
	return &wandbView{rows: map[int64]map[string]any{}, config: map[string]any{}, summary: map[string]any{}}
}

func jsonAny(s string) any {
	switch s {
	case "NaN":
		return math.NaN()
	case "Infinity":
		return math.Inf(1)
	case "-Infinity":
		return math.Inf(-1)
	}
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return s
	}
	return v
}

func keyOf(k string, nested []string) string {
	if k != "" {
		return k
	}
	return strings.Join(nested, "/")
}

// readWandbView folds a .wandb file written by wandb's own core. Summary
// records core derives from history carry no stream id; the script's own
// updates do.
func readWandbView(t *testing.T, path string) *wandbView {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := wandbwire.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	v := newView()
	for {
		b, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		var rec wandbv1.Record
		if err := proto.Unmarshal(b, &rec); err != nil {
			t.Fatal(err)
		}
		switch k := rec.GetKind().(type) {
		case *wandbv1.Record_Run:
			for _, it := range k.Run.GetConfig().GetUpdate() {
				v.config[keyOf(it.GetKey(), it.GetNestedKey())] = jsonAny(it.GetValueJson())
			}
		case *wandbv1.Record_Config:
			for _, it := range k.Config.GetUpdate() {
				v.config[keyOf(it.GetKey(), it.GetNestedKey())] = jsonAny(it.GetValueJson())
			}
			for _, it := range k.Config.GetRemove() {
				delete(v.config, keyOf(it.GetKey(), it.GetNestedKey()))
			}
		case *wandbv1.Record_Summary:
			if rec.GetInfo().GetStreamId() == "" {
				continue
			}
			for _, it := range k.Summary.GetUpdate() {
				v.summary[keyOf(it.GetKey(), it.GetNestedKey())] = jsonAny(it.GetValueJson())
			}
		case *wandbv1.Record_History:
			row := map[string]any{}
			for _, it := range k.History.GetItem() {
				key := keyOf(it.GetKey(), it.GetNestedKey())
				if key == "_step" || key == "_runtime" {
					continue
				}
				row[key] = jsonAny(it.GetValueJson())
			}
			v.rows[k.History.GetStep().GetNum()] = row
		case *wandbv1.Record_OutputRaw:
			v.output += k.OutputRaw.GetLine()
		}
	}
	return v
}

func valueAny(val *runlogv1.Value) any {
	switch k := val.GetKind().(type) {
	case *runlogv1.Value_DoubleValue:
		return k.DoubleValue
	case *runlogv1.Value_IntValue:
		return float64(k.IntValue)
	case *runlogv1.Value_BoolValue:
		return k.BoolValue
	case *runlogv1.Value_StringValue:
		return k.StringValue
	case *runlogv1.Value_JsonValue:
		return jsonAny(string(k.JsonValue))
	}
	return nil
}

// readRunlogView folds a runlog run's log (the service stopped or not
// holding it).
func readRunlogView(t *testing.T, root, id string, imported bool) *wandbView {
	t.Helper()
	l, err := wal.Open(filepath.Join(root, "runs", id, "wal.bolt"), wal.Options{ReadOnly: true, LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	v := newView()
	err = replay.Records(l, replay.Filter{}, func(r *runlogv1.Record) error {
		switch p := r.GetPayload().(type) {
		case *runlogv1.Record_Config:
			for _, it := range p.Config.GetSet() {
				if !strings.HasPrefix(it.GetKey(), "_wandb/") {
					v.config[it.GetKey()] = valueAny(it.GetValue())
				}
			}
			for _, k := range p.Config.GetRemove() {
				delete(v.config, k)
			}
		case *runlogv1.Record_Summary:
			for _, it := range p.Summary.GetSet() {
				v.summary[it.GetKey()] = valueAny(it.GetValue())
			}
		case *runlogv1.Record_History:
			row := map[string]any{}
			for _, it := range p.History.GetItems() {
				if it.GetKey() != "_runtime" {
					row[it.GetKey()] = valueAny(it.GetValue())
				}
			}
			v.rows[p.History.GetStep()] = row
		case *runlogv1.Record_Output:
			v.output += p.Output.GetText()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func sameAny(a, b any) bool {
	if fa, ok := a.(float64); ok {
		fb, ok := b.(float64)
		return ok && (fa == fb || math.IsNaN(fa) && math.IsNaN(fb))
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

func compareMaps(t *testing.T, what string, want, got map[string]any) {
	t.Helper()
	keys := map[string]bool{}
	for k := range want {
		keys[k] = true
	}
	for k := range got {
		keys[k] = true
	}
	var diffs []string
	for k := range keys {
		if !sameAny(want[k], got[k]) {
			diffs = append(diffs, fmt.Sprintf("%s: wandb %v, runlog %v", k, want[k], got[k]))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("%s differs in %d keys: %s", what, len(diffs), strings.Join(diffs[:min(len(diffs), 5)], "; "))
	}
}

func compareViews(t *testing.T, want, got *wandbView, withSummary bool) {
	t.Helper()
	if len(want.rows) != len(got.rows) {
		t.Errorf("rows: wandb %d, runlog %d", len(want.rows), len(got.rows))
	}
	bad := 0
	for step, w := range want.rows {
		g, ok := got.rows[step]
		if !ok {
			bad++
			if bad < 3 {
				t.Errorf("step %d missing", step)
			}
			continue
		}
		// _timestamp is stamped by each run's own SDK process, so it
		// must exist but cannot match across two runs of the script.
		if _, ok := g["_timestamp"]; !ok {
			t.Errorf("step %d has no _timestamp", step)
		}
		wc, gc := maps(w), maps(g)
		delete(wc, "_timestamp")
		delete(gc, "_timestamp")
		compareMaps(t, fmt.Sprintf("row %d", step), wc, gc)
	}
	wc, gc := maps(want.config), maps(got.config)
	compareMaps(t, "config", wc, gc)
	if withSummary {
		compareMaps(t, "summary", want.summary, got.summary)
	}
	if want.output != got.output {
		t.Errorf("output: wandb %q, runlog %q", want.output, got.output)
	}
}

func maps(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func findWandbFile(t *testing.T, dir string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "wandb", "offline-run-*", "run-*.wandb"))
	if len(m) != 1 {
		t.Fatalf("want one .wandb file under %s, found %v", dir, m)
	}
	return m[0]
}

func startWandbService(t *testing.T, root string) (*exec.Cmd, string) {
	t.Helper()
	svc := exec.Command(bin(t), "service", "--root", root, "--offline")
	var logBuf bytes.Buffer
	svc.Stderr = &logBuf
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		svc.Process.Kill()
		svc.Wait()
		if t.Failed() {
			t.Logf("service log:\n%s", logBuf.String())
		}
	})
	sock := filepath.Join(root, "wandb.sock")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if out, err := exec.Command(bin(t), "wandb-env", "--root", root).Output(); err == nil {
			if _, err := os.Stat(sock); err == nil {
				return svc, strings.TrimSpace(string(out))
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("service did not come up: %s", logBuf.String())
		}
		time.Sleep(20 * time.Millisecond) // polling a child's startup; no event to await
	}
}

// TestWandbSDK runs an unchanged wandb script twice, once with wandb's own
// core and once through runlog's front door, and compares what each run
// holds value by value; then imports wandb's file, exports the runlog run
// and imports the export, comparing again.
func TestWandbSDK(t *testing.T) {
	py := wandbPython(t)
	tmp := t.TempDir()
	own := filepath.Join(tmp, "own")
	viaRunlog := filepath.Join(tmp, "via")
	root := filepath.Join(tmp, "root")
	os.MkdirAll(own, 0o755)
	os.MkdirAll(viaRunlog, 0o755)

	start := time.Now()
	if _, err := runWandbScript(t, py, own); err != nil {
		t.Fatalf("script with wandb-core: %v", err)
	}
	ownTook := time.Since(start)
	want := readWandbView(t, findWandbFile(t, own))
	if len(want.rows) < 500 {
		t.Fatalf("wandb's own file holds only %d rows", len(want.rows))
	}

	svc, env := startWandbService(t, root)
	start = time.Now()
	out, err := runWandbScript(t, py, viaRunlog, env)
	if err != nil {
		t.Fatalf("script through runlog: %v", err)
	}
	viaTook := time.Since(start)
	t.Logf("script: %s with wandb-core, %s through runlog", ownTook, viaTook)
	id := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(out[strings.LastIndex(out, "finished"):]), "finished"))
	// SIGKILL right after wandb.finish() returned: everything must be in
	// the log already.
	svc.Process.Signal(syscall.SIGKILL)
	svc.Wait()
	got := readRunlogView(t, root, id, false)
	compareViews(t, want, got, true)

	// Import wandb's own file and compare it with the file.
	imp := exec.Command(bin(t), "import", findWandbFile(t, own), "--root", root)
	if b, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("import: %v: %s", err, b)
	}
	stopRootService(t, root)
	ownID := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(findWandbFile(t, own)), "run-"), ".wandb")
	compareViews(t, want, readRunlogView(t, root, ownID, true), false)

	// Export the runlog run, import the export into another root.
	exp := filepath.Join(tmp, "export")
	stopRootService(t, root)
	if b, err := exec.Command(bin(t), "export", id, "--wandb", exp, "--root", root).CombinedOutput(); err != nil {
		t.Fatalf("export: %v: %s", err, b)
	}
	root2 := filepath.Join(tmp, "root2")
	m, _ := filepath.Glob(filepath.Join(exp, "offline-run-*"))
	if len(m) != 1 {
		t.Fatalf("export wrote %v", m)
	}
	if b, err := exec.Command(bin(t), "import", m[0], "--root", root2).CombinedOutput(); err != nil {
		t.Fatalf("import of export: %v: %s", err, b)
	}
	stopRootService(t, root2)
	compareViews(t, got, readRunlogView(t, root2, id, true), true)

	// wandb sync --dry-run lists the export.
	syncCmd := exec.Command(filepath.Join(filepath.Dir(py), "wandb"), "sync", "--dry-run", m[0])
	syncCmd.Env = append(os.Environ(), "WANDB_SILENT=true")
	syncCmd.Dir = t.TempDir() // wandb sync writes its debug logs under ./wandb
	b, err := syncCmd.CombinedOutput()
	if err != nil || !strings.Contains(string(b), "run-"+id+".wandb") {
		t.Fatalf("wandb sync --dry-run: %v: %s", err, b)
	}
	stopRootService(t, root2)

	wandbSyncUploads(t, py, m[0], id, "proj")
}

// wandbSyncUploads runs the real wandb sync on an exported directory
// against a loopback listener that stands for an unreachable server: sync
// must read the run and get as far as its first upload, which names the
// run and its project.
func wandbSyncUploads(t *testing.T, py, dir, id, project string) {
	t.Helper()
	type request struct {
		method, path string
		body         []byte
	}
	first := make(chan request, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case first <- request{r.Method, r.URL.Path, b}:
		default:
		}
		http.Error(w, "no upload in tests", http.StatusInternalServerError)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(filepath.Dir(py), "wandb"), "sync", dir)
	cmd.Env = append(os.Environ(), "WANDB_BASE_URL="+srv.URL, "WANDB_API_KEY="+strings.Repeat("0", 40),
		"WANDB_CONFIG_DIR="+t.TempDir(), "WANDB_CACHE_DIR="+t.TempDir())
	cmd.Dir = t.TempDir() // wandb sync writes its debug logs under ./wandb
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill() // it retries the upload for minutes
		cmd.Wait()
	}()
	var req request
	select {
	case req = <-first:
	case <-ctx.Done():
		t.Fatalf("wandb sync sent nothing to %s: %s", srv.URL, out.String())
	}
	var gql struct {
		Query     string         `json:"query"`
		Variables map[string]any `json:"variables"`
	}
	if err := json.Unmarshal(req.body, &gql); err != nil {
		t.Fatalf("first request %s %s is not GraphQL: %v: %.200s", req.method, req.path, err, req.body)
	}
	if req.method != http.MethodPost || req.path != "/graphql" || !strings.Contains(gql.Query, "UpsertBucket") ||
		gql.Variables["name"] != id || gql.Variables["project"] != project {
		t.Fatalf("first request %s %s: %.120q with %v; want the UpsertBucket of run %s in project %s",
			req.method, req.path, gql.Query, gql.Variables, id, project)
	}
}

// TestWandbImportTruncated imports a prefix of a real .wandb file: the
// valid records come in and the command names where it stopped.
func TestWandbImportTruncated(t *testing.T) {
	py := wandbPython(t)
	tmp := t.TempDir()
	if _, err := runWandbScript(t, py, tmp); err != nil {
		t.Fatal(err)
	}
	file := findWandbFile(t, tmp)
	data, _ := os.ReadFile(file)
	cut := filepath.Join(tmp, "cut.wandb")
	os.WriteFile(cut, data[:len(data)*2/3], 0o644)
	root := filepath.Join(tmp, "root")
	var stderr bytes.Buffer
	imp := exec.Command(bin(t), "import", cut, "--root", root)
	imp.Stderr = &stderr
	err := imp.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("import of a truncated file: %v, want exit 1", err)
	}
	if !strings.Contains(stderr.String(), "stopped at byte") {
		t.Fatalf("stderr does not name where it stopped: %s", stderr.String())
	}
	// Count the rows in the valid prefix with the reader itself.
	r, _ := wandbwire.NewReader(bytes.NewReader(data[:len(data)*2/3]))
	rows := 0
	for {
		b, err := r.Next()
		if err != nil {
			break
		}
		var rec wandbv1.Record
		proto.Unmarshal(b, &rec)
		if rec.GetHistory() != nil {
			rows++
		}
	}
	// The import leaves a service running in root; stop it so the log can
	// be opened.
	stopRootService(t, root)
	id := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(file), "run-"), ".wandb")
	v := readRunlogView(t, root, id, true)
	if rows == 0 || len(v.rows) != rows {
		t.Fatalf("imported %d rows, the valid prefix holds %d", len(v.rows), rows)
	}
}

func stopRootService(t *testing.T, root string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "service.lock"))
	if err != nil {
		return
	}
	var info struct {
		PID int `json:"pid"`
	}
	if json.Unmarshal(b, &info) != nil || info.PID == 0 {
		return
	}
	p, _ := os.FindProcess(info.PID)
	p.Signal(syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if p.Signal(syscall.Signal(0)) != nil {
			return
		}
		time.Sleep(10 * time.Millisecond) // another process's exit: no event to await
	}
}

// TestWandbSDKServiceKilledMidScript SIGKILLs the service in the middle of
// an unchanged script: the script ends with wandb's own error instead of
// hanging, and the rows that reached the service before the kill (the
// script read its summary, which the service answers only once every
// earlier row is durable) are in the log, in order and gap-free.
func TestWandbSDKServiceKilledMidScript(t *testing.T) {
	py := wandbPython(t)
	tmp := t.TempDir()
	root := filepath.Join(tmp, "root")
	svc, env := startWandbService(t, root)
	const k = 300
	script, _ := filepath.Abs("testdata/wandb/midkill.py")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, script)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "WANDB_MODE=offline", "WANDB_SILENT=true", "WANDB_DIR="+tmp,
		"WANDB_DISABLE_GIT=true", fmt.Sprintf("K=%d", k), env)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	var id string
	for lines.Scan() {
		if f := strings.Fields(lines.Text()); len(f) >= 2 && f[0] == "synced" {
			id = f[1]
			break
		}
	}
	if id == "" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("script never synced: %s", stderr.String())
	}
	if err := svc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	svc.Wait()
	killed := time.Now()
	stdin.Close() // the script logs k more rows and finishes
	var rest strings.Builder
	for lines.Scan() {
		rest.WriteString(lines.Text() + "\n")
	}
	err = cmd.Wait()
	took := time.Since(killed)
	if ctx.Err() != nil {
		t.Fatalf("script still running %s after the service was killed: wedged (stderr: %s)", took, stderr.String())
	}
	t.Logf("script ended %s after the kill: %v; %s", took.Round(time.Millisecond), err, strings.TrimSpace(rest.String()))
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("script exited %v after the service was killed; want wandb's error (stdout %q, stderr %s)", err, rest.String(), stderr.String())
	}

	l, err := wal.Open(filepath.Join(root, "runs", id, "wal.bolt"), wal.Options{ReadOnly: true, LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var steps []int64
	var lastSeq uint64
	err = replay.Records(l, replay.Filter{}, func(r *runlogv1.Record) error {
		if r.GetSeq() != lastSeq+1 {
			return fmt.Errorf("seq %d follows %d", r.GetSeq(), lastSeq)
		}
		lastSeq = r.GetSeq()
		h := r.GetHistory()
		if h == nil {
			return nil
		}
		vals := map[string]*runlogv1.Value{}
		for _, it := range h.GetItems() {
			vals[it.GetKey()] = it.GetValue()
		}
		s := h.GetStep()
		if vals["i"].GetIntValue() != s || vals["v"].GetDoubleValue() != float64(s)*1.5 {
			return fmt.Errorf("row at step %d holds i=%v v=%v", s, vals["i"], vals["v"])
		}
		steps = append(steps, s)
		return nil
	})
	if err != nil {
		t.Fatalf("log of %s: %v", id, err)
	}
	for i, s := range steps {
		if s != int64(i) {
			t.Fatalf("row %d has step %d: the log has a gap", i, s)
		}
	}
	if len(steps) < k {
		t.Fatalf("log holds %d rows; the %d before the sync point reached the service", len(steps), k)
	}
	t.Logf("log holds %d rows (%d before the sync point, %d logged in all)", len(steps), k, 2*k)
}

// TestWandbImportRows imports a .wandb file of 100,000 rows that the real
// SDK wrote (over a thousand 32 KiB blocks, records crossing block
// boundaries) and compares every row and the final summary value by value;
// the run keeps each record's wandb record number.
func TestWandbImportRows(t *testing.T) {
	py := wandbPython(t)
	tmp := t.TempDir()
	const n = 100000
	script, _ := filepath.Abs("testdata/wandb/rows.py")
	gen := exec.Command(py, script)
	gen.Dir = tmp
	gen.Env = append(os.Environ(), "WANDB_MODE=offline", "WANDB_SILENT=true", "WANDB_DIR="+tmp,
		"WANDB_DISABLE_GIT=true", fmt.Sprintf("N=%d", n))
	if b, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("write %d rows with the SDK: %v: %s", n, err, b)
	}
	file := findWandbFile(t, tmp)
	if fi, err := os.Stat(file); err != nil || fi.Size() < 1000*32<<10 {
		t.Fatalf("%s: %v; want more than a thousand blocks", file, err)
	}
	want := readWandbView(t, file)
	if len(want.rows) != n {
		t.Fatalf("the SDK's file holds %d rows, want %d", len(want.rows), n)
	}
	root := filepath.Join(tmp, "root")
	start := time.Now()
	if b, err := exec.Command(bin(t), "import", filepath.Dir(file), "--root", root).CombinedOutput(); err != nil {
		t.Fatalf("import: %v: %s", err, b)
	} else {
		t.Logf("%s(%s in all)", b, time.Since(start).Round(time.Millisecond))
	}
	stopRootService(t, root)
	id := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(file), "run-"), ".wandb")
	got := readRunlogView(t, root, id, true)
	compareViews(t, want, got, false)

	// The summary: every summary record of the file folded in order,
	// those core derives from history included.
	kinds := map[int64]*wandbv1.Record{} // wandb record number -> record
	wantSummary := map[string]any{}
	forEachWandbRecord(t, file, func(rec *wandbv1.Record) {
		kinds[rec.GetNum()] = rec
		for _, it := range rec.GetSummary().GetUpdate() {
			wantSummary[keyOf(it.GetKey(), it.GetNestedKey())] = jsonAny(it.GetValueJson())
		}
	})
	compareMaps(t, "summary", wantSummary, got.summary)

	// Record numbers: every imported record maps to a wandb record of its
	// kind, rows to the row of their step.
	l, err := wal.Open(filepath.Join(root, "runs", id, "wal.bolt"), wal.Options{ReadOnly: true, LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var recs []*runlogv1.Record
	var mapping struct {
		ClientID string     `json:"client_id"`
		Spans    [][4]int64 `json:"spans"`
	}
	err = replay.Records(l, replay.Filter{}, func(r *runlogv1.Record) error {
		recs = append(recs, proto.Clone(r).(*runlogv1.Record)) // r is reused
		for _, it := range r.GetConfig().GetSet() {
			if it.GetKey() == "_wandb/record_nums" {
				if err := json.Unmarshal(it.GetValue().GetJsonValue(), &mapping); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil || len(mapping.Spans) == 0 {
		t.Fatalf("no record numbers in the run: %v", err)
	}
	numOf := func(seq uint64) int64 {
		for _, s := range mapping.Spans {
			if int64(seq) >= s[0] && int64(seq) < s[0]+s[2] {
				return s[1] + (int64(seq)-s[0])*s[3]
			}
		}
		return -1
	}
	rows := 0
	for _, r := range recs {
		if r.GetClientId() != mapping.ClientID || r.GetClientSeq() == 0 || len(r.GetConfig().GetSet()) == 1 && r.GetConfig().GetSet()[0].GetKey() == "_wandb/record_nums" {
			continue // written by the import itself, not from a wandb record
		}
		num := numOf(r.GetClientSeq())
		w := kinds[num]
		switch {
		case w == nil:
			t.Fatalf("record %d (client_seq %d) maps to wandb record %d, which the file does not hold", r.GetSeq(), r.GetClientSeq(), num)
		case r.GetHistory() != nil && w.GetHistory().GetStep().GetNum() != r.GetHistory().GetStep():
			t.Fatalf("row at step %d maps to wandb record %d: %v", r.GetHistory().GetStep(), num, w.GetKind())
		case r.GetSummary() != nil && w.GetSummary() == nil:
			t.Fatalf("summary record %d maps to wandb record %d: %v", r.GetSeq(), num, w.GetKind())
		}
		if r.GetHistory() != nil {
			rows++
		}
	}
	if rows != n {
		t.Fatalf("%d rows mapped to wandb record numbers, want %d", rows, n)
	}
}

func forEachWandbRecord(t *testing.T, path string, fn func(*wandbv1.Record)) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := wandbwire.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	for {
		b, err := r.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		rec := &wandbv1.Record{}
		if err := proto.Unmarshal(b, rec); err != nil {
			t.Fatal(err)
		}
		fn(rec)
	}
}

// TestWandbSDKShared runs three SDK processes on one run in wandb's shared
// mode at the same time: every row of each lands in the one run, the steps
// never go down, and the run finishes once, after the last process.
func TestWandbSDKShared(t *testing.T) {
	py := wandbPython(t)
	tmp := t.TempDir()
	root := filepath.Join(tmp, "root")
	_, env := startWandbService(t, root)
	script, _ := filepath.Abs("testdata/wandb/shared.py")
	const n = 150
	labels := []string{"a", "b", "c"}
	cmds := map[string]*exec.Cmd{}
	outs := map[string]*bytes.Buffer{}
	started := make(chan string, len(labels))
	var primaryIn io.WriteCloser
	for _, l := range labels {
		primary := "0"
		if l == "a" {
			primary = "1"
		}
		cmd := exec.Command(py, script)
		cmd.Dir = tmp
		// Shared mode is an online mode: the SDK wants a key, which only
		// the (absent) server would read.
		cmd.Env = append(os.Environ(), env, "WANDB_SILENT=true", "WANDB_DIR="+tmp, "WANDB_DISABLE_GIT=true",
			"WANDB_API_KEY="+strings.Repeat("0", 40), "WANDB_BASE_URL=http://127.0.0.1:9",
			"WANDB_CONFIG_DIR="+t.TempDir(), "RUN_ID=shared1", "LABEL="+l, "PRIMARY="+primary, fmt.Sprintf("N=%d", n))
		outs[l] = &bytes.Buffer{}
		cmd.Stderr = outs[l]
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if l == "a" {
			if primaryIn, err = cmd.StdinPipe(); err != nil {
				t.Fatal(err)
			}
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[l] = cmd
		lines := bufio.NewScanner(stdout)
		if !lines.Scan() || lines.Text() != "started" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("process %s did not start: %q: %s", l, lines.Text(), outs[l].String())
		}
		// Each has joined before the next starts; they log concurrently.
		go func() { // ends at the process's exit, awaited below
			var rest bytes.Buffer
			for lines.Scan() {
				rest.WriteString(lines.Text() + "\n")
			}
			started <- l + " " + rest.String()
		}()
	}
	primaryIn.Close() // every process joined: the primary may finish
	for range labels {
		if out := <-started; !strings.Contains(out, "finished shared1") {
			t.Errorf("process %s", out)
		}
	}
	for _, l := range labels {
		if err := cmds[l].Wait(); err != nil {
			t.Errorf("process %s: %v: %s", l, err, outs[l].String())
		}
	}
	if t.Failed() {
		return
	}
	stopRootService(t, root)
	l, err := wal.Open(filepath.Join(root, "runs", "shared1", "wal.bolt"), wal.Options{ReadOnly: true, LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	next := map[string]int64{} // label -> next i expected
	lastStep, exits, afterExit := int64(-1), 0, 0
	config := map[string]bool{}
	err = replay.Records(l, replay.Filter{}, func(r *runlogv1.Record) error {
		if exits > 0 {
			afterExit++
		}
		switch p := r.GetPayload().(type) {
		case *runlogv1.Record_History:
			if p.History.GetStep() <= lastStep {
				return fmt.Errorf("step %d after step %d", p.History.GetStep(), lastStep)
			}
			lastStep = p.History.GetStep()
			for _, it := range p.History.GetItems() {
				label, key, ok := strings.Cut(it.GetKey(), "/")
				if !ok || key != "i" {
					continue
				}
				if it.GetValue().GetIntValue() != next[label] {
					return fmt.Errorf("process %s: row i=%d where %d is due", label, it.GetValue().GetIntValue(), next[label])
				}
				next[label]++
			}
		case *runlogv1.Record_Config:
			for _, it := range p.Config.GetSet() {
				config[it.GetKey()] = true
			}
		case *runlogv1.Record_Exit:
			exits++
			if p.Exit.GetCode() != 0 {
				return fmt.Errorf("run finished with code %d", p.Exit.GetCode())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, lb := range labels {
		if next[lb] != n || !config[lb] {
			t.Errorf("process %s: %d of %d rows in the run, config key set: %v", lb, next[lb], n, config[lb])
		}
	}
	if exits != 1 || afterExit != 0 {
		t.Errorf("%d exit records, %d records after the first; want one, last", exits, afterExit)
	}
}

// TestWandbEnvTCP: runlog wandb-env --tcp starts a service that outlives
// it, serving the SDK on loopback TCP, and a script logs through it;
// --no-start says how to start one; --wandb-listen refuses other hosts.
func TestWandbEnvTCP(t *testing.T) {
	py := wandbPython(t)
	tmp := t.TempDir()
	root := filepath.Join(tmp, "root")
	var stderr bytes.Buffer
	noStart := exec.Command(bin(t), "wandb-env", "--root", root, "--no-start")
	noStart.Stderr = &stderr
	if err := noStart.Run(); err == nil || !strings.Contains(stderr.String(), "runlog service --root "+root) {
		t.Fatalf("wandb-env --no-start with no service: %v, %q; want a failure that says how to start one", err, stderr.String())
	}
	if b, err := exec.Command(bin(t), "service", "--root", filepath.Join(tmp, "other"), "--wandb-listen", "tcp://0.0.0.0:0").CombinedOutput(); err == nil || !strings.Contains(string(b), "loopback") {
		t.Fatalf("service --wandb-listen on all interfaces: %v: %s; want a refusal", err, b)
	}

	t.Cleanup(func() { stopRootService(t, root) })
	out, err := exec.Command(bin(t), "wandb-env", "--root", root, "--tcp").Output()
	if err != nil {
		t.Fatalf("wandb-env --tcp: %v", err)
	}
	env := strings.TrimSpace(string(out))
	if !strings.HasPrefix(env, "WANDB_SERVICE=3-") || !strings.Contains(env, "-tcp-localhost-") {
		t.Fatalf("wandb-env --tcp printed %q", env)
	}
	// The command has ended; its service still serves.
	again, err := exec.Command(bin(t), "wandb-env", "--root", root, "--tcp", "--no-start").Output()
	if err != nil || strings.TrimSpace(string(again)) != env {
		t.Fatalf("second wandb-env --tcp: %v, %q; want the same service (%q)", err, again, env)
	}
	const n = 200
	script, _ := filepath.Abs("testdata/wandb/rows.py")
	cmd := exec.Command(py, script)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), env, "WANDB_MODE=offline", "WANDB_SILENT=true", "WANDB_DIR="+tmp,
		"WANDB_DISABLE_GIT=true", fmt.Sprintf("N=%d", n))
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("script over TCP: %v: %s", err, b)
	}
	id := strings.TrimSpace(string(b[bytes.LastIndex(b, []byte("finished "))+len("finished "):]))
	stopRootService(t, root)
	if _, err := os.Stat(filepath.Join(root, "wandb.port")); !os.IsNotExist(err) {
		t.Errorf("wandb.port left after the service stopped: %v", err)
	}
	v := readRunlogView(t, root, id, false)
	if len(v.rows) != n {
		t.Fatalf("run %s holds %d rows, want %d", id, len(v.rows), n)
	}
	for step, row := range v.rows {
		if row["i"] != float64(step) || row["x"] != float64(step)*0.25 {
			t.Fatalf("row %d: %v", step, row)
		}
	}
}

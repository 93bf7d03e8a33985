package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runlog/runlog/store/storetest"
)

func TestShowAndRunsOnHub(t *testing.T) {
	h := startHub(t)
	root := t.TempDir()
	makeRun(t, root, "shown", storetest.Run{Project: "vision", Rows: 200, Keys: 3, Exit: exitFinished})
	makeRun(t, root, "other", storetest.Run{Project: "nlp", Rows: 5, Keys: 1})
	if code, _, stderr := runCmd(t, "sync", "--root", root, "--upstream", h.URL, "--all"); code != 0 {
		t.Fatalf("sync: %d\n%s", code, stderr)
	}

	code, stdout, stderr := runCmd(t, "show", "shown", "--hub", h.URL, "--json", "--history", "metric/0,metric/2", "--samples", "5")
	if code != 0 {
		t.Fatalf("show: %d\n%s", code, stderr)
	}
	var run struct {
		RunID     string           `json:"run_id"`
		State     string           `json:"state"`
		Records   uint64           `json:"records"`
		HighWater uint64           `json:"high_water"`
		LastStep  int64            `json:"last_step"`
		Project   string           `json:"project"`
		Config    map[string]any   `json:"config"`
		Digest    string           `json:"digest"`
		History   []map[string]any `json:"history"`
		Exit      struct {
			Reason string `json:"reason"`
		} `json:"exit"`
	}
	if err := json.Unmarshal([]byte(stdout), &run); err != nil {
		t.Fatalf("show --json: %v\n%s", err, stdout)
	}
	if run.RunID != "shown" || run.State != "finished" || run.Records != 203 || run.HighWater != 203 ||
		run.LastStep != 199 || run.Project != "vision" || run.Config["lr"] != 0.001 || run.Exit.Reason != "finished" ||
		!strings.HasPrefix(run.Digest, "sha256:") {
		t.Fatalf("show --json: %+v", run)
	}
	if len(run.History) != 5 || run.History[4]["_step"] != 199.0 || run.History[4]["metric/2"] != 199.0*3 {
		t.Fatalf("history: %v", run.History)
	}

	code, stdout, _ = runCmd(t, "show", "--hub", h.URL, "shown")
	for _, want := range []string{"state", "finished (exit finished, code 0)", "records", "203 (the hub holds seq 1..203)", "lr", "0.001"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Fatalf("show text lacks %q:\n%s", want, stdout)
		}
	}

	// Flags after RUN, when RUN follows flags too.
	code, stdout, stderr = runCmd(t, "show", "--hub", h.URL, "shown", "--json")
	if code != 0 || !strings.Contains(stdout, `"run_id": "shown"`) {
		t.Fatalf("show --hub URL RUN --json: %d\n%s%s", code, stdout, stderr)
	}
	if code, _, stderr = runCmd(t, "show", "shown", "other", "--hub", h.URL); code != 2 || !strings.Contains(stderr, `unexpected argument "other"`) {
		t.Fatalf("two runs: %d %s", code, stderr)
	}

	code, stdout, _ = runCmd(t, "runs", "--hub", h.URL, "--json")
	var list []struct {
		RunID   string `json:"run_id"`
		State   string `json:"state"`
		Records uint64 `json:"records"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &list) != nil || len(list) != 2 ||
		list[0].RunID != "other" || list[0].State != "running" || list[0].Records != 7 || list[1].RunID != "shown" {
		t.Fatalf("runs --hub --json: %d %s", code, stdout)
	}
	code, stdout, _ = runCmd(t, "runs", "--hub", h.URL, "--project", "vision")
	if code != 0 || !strings.Contains(stdout, "shown") || strings.Contains(stdout, "other") {
		t.Fatalf("runs --hub --project vision:\n%s", stdout)
	}

	code, _, stderr = runCmd(t, "show", "nope", "--hub", h.URL)
	if code != 1 || !strings.Contains(stderr, "NotFound") {
		t.Fatalf("unknown run: %d %s", code, stderr)
	}
}

func TestShowNeedsToken(t *testing.T) {
	tok := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tok, []byte("t0ken"), 0o600)
	h := startHub(t, "--token-file", tok)
	code, _, stderr := runCmd(t, "runs", "--hub", h.URL)
	if code != 1 || !strings.Contains(stderr, "Unauthenticated") {
		t.Fatalf("no token: %d %s", code, stderr)
	}
	code, stdout, stderr := runCmd(t, "runs", "--hub", h.URL, "--token-file", tok)
	if code != 0 || !strings.Contains(stdout, "no runs") {
		t.Fatalf("with token: %d %s %s", code, stdout, stderr)
	}
}

func TestRunsShowsSyncState(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("right"), 0o600)
	wrong := filepath.Join(dir, "wrong")
	os.WriteFile(wrong, []byte("wrong"), 0o600)
	h := startHub(t, "--token-file", tok)
	root := t.TempDir()
	makeRun(t, root, "ok", storetest.Run{Rows: 20, Keys: 1, Exit: exitFinished})
	makeRun(t, root, "bad", storetest.Run{Rows: 20, Keys: 1, Exit: exitFinished})
	makeRun(t, root, "typo", storetest.Run{Rows: 20, Keys: 1, Exit: exitFinished})
	runCmd(t, "sync", "--root", root, "--upstream", h.URL, "--token-file", tok, "ok", "bad")
	// A later sync of "bad" is refused: its last error shows beside its
	// synced seq. "typo" was only ever pushed to an upstream that refused
	// it, which leaves nothing in its log (a mistyped URL would otherwise
	// show as lagging forever).
	runCmd(t, "sync", "--root", root, "--upstream", h.URL, "--token-file", wrong, "bad", "typo")

	code, stdout, stderr := runCmd(t, "runs", "--root", root, "--json")
	if code != 0 {
		t.Fatalf("runs: %d %s", code, stderr)
	}
	var rows []struct {
		RunID      string            `json:"run_id"`
		Records    uint64            `json:"records"`
		Synced     map[string]uint64 `json:"synced"`
		Lag        map[string]uint64 `json:"lag"`
		SyncErrors map[string]string `json:"sync_errors"`
	}
	if err := json.Unmarshal([]byte(stdout), &rows); err != nil || len(rows) != 3 {
		t.Fatalf("runs --json: %v\n%s", err, stdout)
	}
	bad, ok, typo := rows[0], rows[1], rows[2]
	if ok.Synced[h.URL] != 23 || ok.Lag[h.URL] != 0 || len(ok.SyncErrors) != 0 {
		t.Fatalf("synced run: %+v", ok)
	}
	if bad.Synced[h.URL] != 23 || bad.Lag[h.URL] != 0 || !strings.Contains(bad.SyncErrors[h.URL], "Unauthenticated") {
		t.Fatalf("refused run: %+v", bad)
	}
	if len(typo.Synced) != 0 || len(typo.SyncErrors) != 0 {
		t.Fatalf("run pushed only to a refusing upstream: %+v", typo)
	}
	_, stdout, _ = runCmd(t, "runs", "--root", root)
	for _, want := range []string{"SYNCED", "LAG", "SYNC ERROR", "Unauthenticated"} {
		if !strings.Contains(stdout, want) {
			t.Fatalf("runs table lacks %q:\n%s", want, stdout)
		}
	}
}

func TestSyncColumnsTellUpstreamsApart(t *testing.T) {
	rows := []runRow{{ID: "r", Records: 10, Cursors: map[string]uint64{
		"upstream:grpc://h:1":  4,
		"upstream:grpcs://h:1": 6,
		"upstream:grpc://g:2":  10,
	}}}
	addSyncState(rows)
	cols := syncColumns(rows)
	if len(cols) != 3 || cols[0].head != "SYNCED" || cols[1].head != "LAG" {
		t.Fatalf("columns %+v", cols)
	}
	if got, want := cols[0].cell(rows[0]), "g:2=10 grpc://h:1=4 grpcs://h:1=6"; got != want {
		t.Fatalf("SYNCED %q, want %q", got, want)
	}
	if got, want := cols[1].cell(rows[0]), "g:2=0 grpc://h:1=6 grpcs://h:1=4"; got != want {
		t.Fatalf("LAG %q, want %q", got, want)
	}
}

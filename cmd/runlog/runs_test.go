package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	runlogv1 "github.com/runlog/runlog/proto/runlog/v1"
	"github.com/runlog/runlog/wal"
	"github.com/runlog/runlog/wal/waltest"
)

// writeRun creates ROOT/runs/ID/wal.bolt with a RunInfo record, steps
// history rows and, when exit is not nil, an exit record.
func writeRun(t *testing.T, dir, id, project, name string, steps int, exit *runlogv1.Exit) {
	t.Helper()
	l, err := wal.Open(runPath(dir, id), wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	recs := []*runlogv1.Record{{Payload: &runlogv1.Record_Run{Run: &runlogv1.RunInfo{Project: project, Name: name}}}}
	recs = append(recs, waltest.History(0, steps, 3)...)
	if exit != nil {
		recs = append(recs, &runlogv1.Record{Payload: &runlogv1.Record_Exit{Exit: exit}})
	}
	if err := l.Append(recs); err != nil {
		t.Fatal(err)
	}
}

func TestRunsFromFiles(t *testing.T) {
	root := t.TempDir()
	writeRun(t, root, "01aaa", "mnist", "baseline", 120, &runlogv1.Exit{Reason: runlogv1.ExitReason_EXIT_REASON_FINISHED})
	writeRun(t, root, "01bbb", "mnist", "wider", 7, nil)
	writeRun(t, root, "01ccc", "cifar", "", 0, &runlogv1.Exit{Code: 1, Reason: runlogv1.ExitReason_EXIT_REASON_FAILED})
	// A run another process holds is listed with an error, not skipped.
	held, err := wal.Open(runPath(root, "01ddd"), wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	var out, errOut bytes.Buffer
	if code := runRuns([]string{"--root", root, "--json"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var rows []runRow
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil {
		t.Fatalf("json: %v\n%s", err, out.String())
	}
	want := []runRow{
		{ID: "01aaa", Project: "mnist", Name: "baseline", State: "finished", Records: 122, LastStep: 119},
		{ID: "01bbb", Project: "mnist", Name: "wider", State: "running", Records: 8, LastStep: 6},
		{ID: "01ccc", Project: "cifar", State: "failed", Records: 2, LastStep: -1},
		{ID: "01ddd", LastStep: -1, Error: "log is held by another process"},
	}
	if len(rows) != len(want) {
		t.Fatalf("got %d rows, want %d: %+v", len(rows), len(want), rows)
	}
	for i, w := range want {
		got := rows[i]
		if w.Error == "" && got.SizeBytes <= 0 {
			t.Errorf("run %s: size %d", got.ID, got.SizeBytes)
		}
		got.SizeBytes = 0
		if got.ID != w.ID || got.Project != w.Project || got.Name != w.Name || got.State != w.State ||
			got.Records != w.Records || got.LastStep != w.LastStep || got.Error != w.Error {
			t.Errorf("row %d = %+v, want %+v", i, got, w)
		}
	}

	out.Reset()
	if code := runRuns([]string{"--root", root}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("table has %d lines:\n%s", len(lines), out.String())
	}
	for _, col := range []string{"RUN", "PROJECT", "NAME", "STATE", "RECORDS", "LAST STEP", "SIZE"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("header %q lacks %s", lines[0], col)
		}
	}
	if f := strings.Fields(lines[1]); len(f) < 8 || f[0] != "01aaa" || f[3] != "finished" || f[4] != "122" || f[5] != "119" || !strings.HasSuffix(f[7], "iB") {
		t.Errorf("first row %q", lines[1])
	}
	if !strings.Contains(lines[4], "error: log is held by another process") {
		t.Errorf("held run row %q", lines[4])
	}
}

func TestRunsEmptyRoot(t *testing.T) {
	root := t.TempDir()
	var out, errOut bytes.Buffer
	if code := runRuns([]string{"--root", root}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "no runs in "+root) {
		t.Errorf("output %q", out.String())
	}
	out.Reset()
	if code := runRuns([]string{"--root", root, "--json"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if strings.TrimSpace(out.String()) != "[]" {
		t.Errorf("json for no runs: %q, want []", out.String())
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 20 << 20: "20.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

package root

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv(EnvDir, "")
	if got, err := Resolve(""); err != nil || string(got) != filepath.Join(home, ".runlog") {
		t.Fatalf("no flag, no env: %q, %v", got, err)
	}
	t.Setenv(EnvDir, "rel/env")
	wd, _ := os.Getwd()
	if got, err := Resolve(""); err != nil || string(got) != filepath.Join(wd, "rel/env") {
		t.Fatalf("env: %q, %v; want it absolute", got, err)
	}
	if got, err := Resolve("flag"); err != nil || string(got) != filepath.Join(wd, "flag") {
		t.Fatalf("flag before env: %q, %v", got, err)
	}
}

func TestLayout(t *testing.T) {
	d := Dir("/r")
	for got, want := range map[string]string{
		d.Runs():       "/r/runs",
		d.RunDir("a"):  "/r/runs/a",
		d.Log("a"):     "/r/runs/a/wal.bolt",
		d.Socket():     "/r/service.sock",
		d.Lock():       "/r/service.lock",
		d.ServiceLog(): "/r/service.log",
	} {
		if got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
	if r, id, ok := RunOfLog("/r/runs/a/copy.bolt"); !ok || r != d || id != "a" {
		t.Errorf("RunOfLog: %q %q %v", r, id, ok)
	}
	if _, _, ok := RunOfLog("/r/elsewhere/a/wal.bolt"); ok {
		t.Error("RunOfLog took a file outside a runs directory")
	}
}

func TestRunIDs(t *testing.T) {
	d := Dir(t.TempDir())
	if ids, err := d.RunIDs(); err != nil || ids != nil {
		t.Fatalf("no runs directory: %v, %v", ids, err)
	}
	for _, id := range []string{"b", "a", "empty", ".hidden"} {
		if err := os.MkdirAll(d.RunDir(id), 0o700); err != nil {
			t.Fatal(err)
		}
		if id != "empty" {
			if err := os.WriteFile(d.Log(id), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	if ids, err := d.RunIDs(); err != nil || !reflect.DeepEqual(ids, []string{"a", "b"}) {
		t.Fatalf("RunIDs = %v, %v; want [a b]", ids, err)
	}
}

func TestCheckRunID(t *testing.T) {
	for _, id := range []string{"a", "01HX.run_1-b", strings.Repeat("x", MaxRunIDLen)} {
		if err := CheckRunID(id); err != nil {
			t.Errorf("%q: %v", id, err)
		}
	}
	for _, id := range []string{"", ".", "..", "-a", "a/b", "a b", strings.Repeat("x", MaxRunIDLen+1)} {
		if err := CheckRunID(id); err == nil {
			t.Errorf("%q accepted", id)
		}
	}
}

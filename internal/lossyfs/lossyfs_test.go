package lossyfs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// mountT mounts a lossy filesystem for the test, or skips where FUSE is
// missing (fails under CI=true).
func mountT(t *testing.T) *FS {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI needs FUSE: %v", err)
		}
		t.Skip(err)
	}
	f, err := Mount(t.TempDir())
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func write(t *testing.T, path, data string, sync bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func syncDir(t *testing.T, dir string) {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) (string, bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b), true
}

func TestPowerCutKeepsOnlyWhatWasSynced(t *testing.T) {
	f := mountT(t)
	d := f.Dir()
	if err := os.Mkdir(filepath.Join(d, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	syncDir(t, d)
	write(t, filepath.Join(d, "sub", "synced-no-dir"), "a", true) // sub not synced yet
	write(t, filepath.Join(d, "unsynced"), "b", false)
	write(t, filepath.Join(d, "durable"), "old", true)
	syncDir(t, d)
	// Growth after the last fsync is lost; so is the new size.
	fh, err := os.OpenFile(filepath.Join(d, "durable"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fh.WriteString("+new")
	fh.Close()
	// A rename into a synced directory that is not synced again is lost.
	write(t, filepath.Join(d, "tmp"), "renamed", true)
	syncDir(t, d)
	if err := os.Rename(filepath.Join(d, "tmp"), filepath.Join(d, "target")); err != nil {
		t.Fatal(err)
	}
	if got, _ := read(t, filepath.Join(d, "durable")); got != "old+new" {
		t.Fatalf("before the cut: %q", got)
	}

	if err := f.PowerCut(); err != nil {
		t.Fatal(err)
	}
	if _, ok := read(t, filepath.Join(d, "sub", "synced-no-dir")); ok {
		t.Error("a file whose directory was never fsynced survived")
	}
	if _, err := os.Stat(filepath.Join(d, "sub")); err != nil {
		t.Error("a directory whose parent was fsynced is gone")
	}
	if got, ok := read(t, filepath.Join(d, "unsynced")); ok && got != "" {
		t.Errorf("unsynced data survived: %q", got)
	}
	if got, _ := read(t, filepath.Join(d, "durable")); got != "old" {
		t.Errorf("durable = %q, want the fsynced %q", got, "old")
	}
	if _, ok := read(t, filepath.Join(d, "target")); ok {
		t.Error("a rename survived without a directory fsync")
	}
	if got, _ := read(t, filepath.Join(d, "tmp")); got != "renamed" {
		t.Errorf("tmp = %q after the lost rename", got)
	}
	if s := f.Stats(); s.Cuts != 1 || s.FileSyncs < 3 || s.DirSyncs < 3 {
		t.Errorf("stats %+v", s)
	}
}

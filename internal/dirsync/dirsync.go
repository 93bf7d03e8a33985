// Package dirsync makes directory entries durable. A file's fsync covers its
// data, not the entry that names it: after a power cut a file that was
// fsynced can still be gone if the directory holding it was not fsynced
// after the entry was created (ext4's journal usually hides this; other
// filesystems do not).
package dirsync

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Sync fsyncs the directory dir, making the entries created or renamed in it
// so far durable.
func Sync(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// MkdirAll is os.MkdirAll that also fsyncs the parent of every directory it
// creates, so the new path survives a power cut. It reports whether it
// created dir itself.
func MkdirAll(dir string, perm fs.FileMode) (created bool, err error) {
	dir = filepath.Clean(dir)
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return false, fmt.Errorf("mkdir %s: not a directory", dir)
		}
		return false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("mkdir %s: %w", dir, err)
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if _, err := MkdirAll(parent, perm); err != nil {
			return false, err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return false, fmt.Errorf("mkdir %s: %w", dir, err)
		}
		// Made by someone else meanwhile, who may not have synced the
		// parent yet.
		return false, Sync(parent)
	}
	if err := Sync(parent); err != nil {
		return true, err
	}
	return true, nil
}

// WriteFile writes data to path atomically: to a temporary name in the same
// directory, fsynced, renamed over path, and the directory fsynced, so a
// reader waiting for the file (a port file) sees all of it or none, also
// after a power cut.
func WriteFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return Sync(dir)
}

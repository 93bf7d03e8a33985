package mux

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"syscall"

	"github.com/runlog/runlog/internal/dirsync"
	"github.com/runlog/runlog/root"
)

// maxSocketPath is the size of sun_path on Linux, terminating NUL included.
const maxSocketPath = 108

// makeRoot creates the root with mode 0700. An existing root must be the
// service's user's own and writable by nobody else (root.Dir.Check); if
// others can enter it, the service says so once.
func makeRoot(dir root.Dir, log *slog.Logger) error {
	if err := dir.Check(); err != nil {
		return fmt.Errorf("open root: %w", err)
	}
	fi, err := os.Stat(string(dir))
	if errors.Is(err, os.ErrNotExist) {
		if _, err := dirsync.MkdirAll(string(dir), 0o700); err != nil {
			return fmt.Errorf("create root %s: %w", dir, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("open root %s: %w", dir, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		log.Warn("root is readable by other users; the socket itself is private (0600)",
			"root", string(dir), "mode", fi.Mode().Perm().String())
	}
	return nil
}

// lockInfo is the content of ROOT/service.lock.
type lockInfo struct {
	PID    int    `json:"pid"`
	Socket string `json:"socket,omitempty"`
	TCP    string `json:"tcp,omitempty"`
}

// portFile is the content of the --port-file.
type portFile struct {
	PID  int    `json:"pid"`
	Unix string `json:"unix"`
	TCP  string `json:"tcp,omitempty"`
}

// rootLock is the flock on ROOT/service.lock held for the service's life.
type rootLock struct {
	path string
	f    *os.File
}

// lockRoot takes ROOT/service.lock or returns a *LockedError naming the
// holder. The file is removed on release, so after locking it checks that
// the path still names the locked file: a service that locked a file another
// one just removed would otherwise run beside the owner of the new file.
func lockRoot(dir root.Dir) (*rootLock, error) {
	path := dir.Lock()
	for range 100 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("lock root %s: %w", dir, err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				le := &LockedError{Root: string(dir)}
				if data, rerr := os.ReadFile(path); rerr == nil {
					var li lockInfo
					if json.Unmarshal(data, &li) == nil {
						le.PID, le.Socket, le.TCP = li.PID, li.Socket, li.TCP
					}
				}
				return nil, le
			}
			return nil, fmt.Errorf("lock root %s: %w", dir, err)
		}
		held, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock root %s: %w", dir, err)
		}
		now, err := os.Stat(path)
		if err != nil || !os.SameFile(held, now) {
			f.Close()
			continue
		}
		l := &rootLock{path: path, f: f}
		if err := l.write(lockInfo{PID: os.Getpid()}); err != nil {
			l.release()
			return nil, err
		}
		return l, nil
	}
	return nil, fmt.Errorf("lock root %s: %s keeps being replaced", dir, path)
}

// write replaces the lock file's content. Readers may see it half written
// for a moment; they only use it to name the holder.
func (l *rootLock) write(li lockInfo) error {
	data, err := json.Marshal(li)
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if err := l.f.Truncate(0); err != nil {
		return fmt.Errorf("write %s: %w", l.path, err)
	}
	if _, err := l.f.WriteAt(data, 0); err != nil {
		return fmt.Errorf("write %s: %w", l.path, err)
	}
	return nil
}

// release removes the lock file and then unlocks it, in that order, so a
// waiting service never locks a file that is about to disappear.
func (l *rootLock) release() error {
	if l.f == nil {
		return nil
	}
	err := os.Remove(l.path)
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}

// writePortFile writes pf to path atomically (dirsync.WriteFile), so a
// client waiting for the file never reads half of it.
func writePortFile(path string, pf portFile) error {
	data, err := json.Marshal(pf)
	if err != nil {
		return fmt.Errorf("write port file %s: %w", path, err)
	}
	if err := dirsync.WriteFile(path, append(data, '\n')); err != nil {
		return fmt.Errorf("port file: %w", err)
	}
	return nil
}

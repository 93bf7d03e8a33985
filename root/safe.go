package root

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// UnsafeError says why a path of a root is not used and what fixes it. A
// root that another user owns or can write lets that user plant a symlink
// at runs/<id> (the service would write a log into their directory) or a
// socket of their own at service.sock (clients would log to them), so no
// path of the layout is followed through a symlink and the root must be
// the caller's own.
type UnsafeError struct {
	Path string // the offending path
	Why  string // what is wrong with it
	Fix  string // the command or step that fixes it
}

func (e *UnsafeError) Error() string {
	return fmt.Sprintf("refusing %s: %s; %s", e.Path, e.Why, e.Fix)
}

// ErrUnsafe matches every *UnsafeError with errors.Is.
var ErrUnsafe = errors.New("root: unsafe path")

// Is reports whether target is ErrUnsafe.
func (e *UnsafeError) Is(target error) bool { return target == ErrUnsafe }

// owner returns the uid that owns fi.
func owner(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}

// userName names uid for a message: "uid 65534 (nobody)".
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Sprintf("uid %d (%s)", uid, u.Username)
	}
	return fmt.Sprintf("uid %d", uid)
}

// checkMine refuses a directory that is not owned by this process's
// effective user or that group or others can write.
func checkMine(path string, fi fs.FileInfo) error {
	me := os.Geteuid()
	if uid, ok := owner(fi); ok && uid != me {
		return &UnsafeError{Path: path,
			Why: fmt.Sprintf("it belongs to %s, not to %s who runs this", userName(uid), userName(me)),
			Fix: fmt.Sprintf("use a root of your own (--root DIR or $%s), or, if it is yours, take it: chown -R %d %s", EnvDir, me, path)}
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return &UnsafeError{Path: path,
			Why: fmt.Sprintf("group or others can write it (mode %s)", fi.Mode().Perm()),
			Fix: fmt.Sprintf("make it private: chmod 700 %s", path)}
	}
	return nil
}

// Check refuses a root that another user owns or that group or others can
// write, and a ROOT/runs that is a symlink, not a directory, or not the
// caller's own in the same way. A root that does not exist yet passes: the
// service creates it with mode 0700. The root's own path may go through
// symlinks (a home directory often does); nothing below it may.
func (d Dir) Check() error {
	fi, err := os.Stat(string(d))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check root %s: %w", d, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("check root %s: not a directory", d)
	}
	if err := checkMine(string(d), fi); err != nil {
		return err
	}
	fi, err = os.Lstat(d.Runs())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check root %s: %w", d, err)
	}
	if err := checkDir(d.Runs(), fi); err != nil {
		return err
	}
	return checkMine(d.Runs(), fi)
}

// checkDir refuses a symlink or anything else that is not a directory.
func checkDir(path string, fi fs.FileInfo) error {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return &UnsafeError{Path: path, Why: "it is a symlink, and no symlink under a root is followed",
			Fix: fmt.Sprintf("remove the link (rm %s) or move the directory it points to in its place", path)}
	case !fi.IsDir():
		return &UnsafeError{Path: path, Why: fmt.Sprintf("it is not a directory (%s)", fi.Mode().Type()),
			Fix: fmt.Sprintf("move it out of the way (mv %s %s.bad)", path, path)}
	}
	return nil
}

// CheckRun refuses a run whose directory or log is a symlink or not what
// the layout says (ROOT/runs a directory, ROOT/runs/<id> a directory, its
// wal.bolt a regular file), using Lstat on each so that no link is
// followed. Paths that do not exist yet pass: whoever opens the log reports
// a missing run or creates it. Call it before opening a run's log.
func (d Dir) CheckRun(id string) error {
	if err := CheckRunID(id); err != nil {
		return err
	}
	for _, dir := range []string{d.Runs(), d.RunDir(id)} {
		fi, err := os.Lstat(dir)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("check run %s: %w", id, err)
		}
		if err := checkDir(dir, fi); err != nil {
			return err
		}
	}
	path := d.Log(id)
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check run %s: %w", id, err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return &UnsafeError{Path: path, Why: "it is a symlink, and no symlink under a root is followed",
			Fix: fmt.Sprintf("remove the link (rm %s) or move the file it points to in its place", path)}
	}
	if !fi.Mode().IsRegular() {
		return &UnsafeError{Path: path, Why: fmt.Sprintf("it is not a regular file (%s)", fi.Mode().Type()),
			Fix: fmt.Sprintf("move it out of the way (mv %s %s.bad)", path, path)}
	}
	return nil
}

// CheckSocket refuses a service socket that is a symlink, not a socket, or
// owned by another user: a process of theirs would receive every record a
// client logs. A missing socket passes (there is no service).
func CheckSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check socket %s: %w", path, err)
	}
	fix := fmt.Sprintf("stop whatever listens there and remove it (rm %s); the next service makes its own", path)
	if fi.Mode()&fs.ModeSymlink != 0 {
		return &UnsafeError{Path: path, Why: "it is a symlink, and no symlink under a root is followed", Fix: fix}
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return &UnsafeError{Path: path, Why: fmt.Sprintf("it is not a socket (%s)", fi.Mode().Type()), Fix: fix}
	}
	if uid, ok := owner(fi); ok && uid != os.Geteuid() {
		return &UnsafeError{Path: path,
			Why: fmt.Sprintf("it belongs to %s, not to %s who runs this, so another user's process may be listening", userName(uid), userName(os.Geteuid())),
			Fix: fix}
	}
	return nil
}

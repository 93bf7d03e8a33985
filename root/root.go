package root

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// EnvDir is the environment variable that names the root when no --root is
// given.
const EnvDir = "RUNLOG_DIR"

// Names in the layout.
const (
	runsDir     = "runs"
	logName     = "wal.bolt"
	socketName  = "service.sock"
	lockName    = "service.lock"
	serviceLog  = "service.log"
	defaultName = ".runlog"
)

// Dir is a runlog root: an absolute directory (see Resolve). Its methods
// build the paths of the layout; they touch nothing on disk except RunIDs.
type Dir string

// Resolve returns the root a command works in, absolute: flag when it is
// not empty (the --root flag), else $RUNLOG_DIR, else ~/.runlog. A leading
// "~/" stands for the home directory.
func Resolve(flag string) (Dir, error) {
	dir := flag
	if dir == "" {
		dir = os.Getenv(EnvDir)
	}
	if dir == "" || strings.HasPrefix(dir, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("find runlog root: no home directory for %q: set --root or $%s: %w", dir, EnvDir, err)
		}
		if dir == "" {
			dir = filepath.Join(home, defaultName)
		} else {
			dir = filepath.Join(home, dir[2:])
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("find runlog root %s: %w", dir, err)
	}
	return Dir(abs), nil
}

// String returns the root's path.
func (d Dir) String() string { return string(d) }

// Runs returns ROOT/runs, the directory of the runs.
func (d Dir) Runs() string { return filepath.Join(string(d), runsDir) }

// RunDir returns ROOT/runs/<id>, the directory of one run.
func (d Dir) RunDir(id string) string { return filepath.Join(string(d), runsDir, id) }

// Log returns ROOT/runs/<id>/wal.bolt, the log of one run.
func (d Dir) Log(id string) string { return filepath.Join(string(d), runsDir, id, logName) }

// Socket returns ROOT/service.sock, the service's unix socket.
func (d Dir) Socket() string { return filepath.Join(string(d), socketName) }

// Lock returns ROOT/service.lock, the file the running service holds locked.
func (d Dir) Lock() string { return filepath.Join(string(d), lockName) }

// ServiceLog returns ROOT/service.log, where a service that a client started
// writes its output.
func (d Dir) ServiceLog() string { return filepath.Join(string(d), serviceLog) }

// PortFile returns ROOT/service-<tag>.port, the port file of a service that
// a client starts; tag tells concurrent starters apart.
func (d Dir) PortFile(tag string) string {
	return filepath.Join(string(d), "service-"+tag+".port")
}

// LogName is the file name of a run's log in its directory.
const LogName = logName

// RunOfLog returns the root and the run id of path when it is the log of a
// run in a root's layout (ROOT/runs/<id>/FILE), and ok false when it is
// not.
func RunOfLog(path string) (d Dir, id string, ok bool) {
	dir := filepath.Dir(path)
	runs := filepath.Dir(dir)
	if filepath.Base(runs) != runsDir {
		return "", "", false
	}
	id = filepath.Base(dir)
	if CheckRunID(id) != nil {
		return "", "", false
	}
	return Dir(filepath.Dir(runs)), id, true
}

// RunIDs returns the ids of the runs under the root, sorted: the
// directories of ROOT/runs with a legal run id that hold a log, and the
// symlinks there with a legal run id (CheckRun refuses them). A root
// without a runs directory has none.
func (d Dir) RunIDs() ([]string, error) {
	ents, err := os.ReadDir(d.Runs())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list runs in %s: %w", d, err)
	}
	return d.RunIDsOf(ents), nil
}

// RunIDsOf is RunIDs over ents, the entries of ROOT/runs as the caller read
// them (a service lists the directory through a handle it keeps open).
func (d Dir) RunIDsOf(ents []os.DirEntry) []string {
	var ids []string
	for _, e := range ents {
		if CheckRunID(e.Name()) != nil {
			continue
		}
		// A symlink in place of a run is listed, so that whoever opens it
		// hears from CheckRun why it is refused; nothing here follows it.
		if e.Type()&os.ModeSymlink == 0 {
			if !e.IsDir() {
				continue
			}
			if _, err := os.Lstat(d.Log(e.Name())); err != nil {
				continue // not a run directory
			}
		}
		ids = append(ids, e.Name())
	}
	sort.Strings(ids)
	return ids
}

// MaxRunIDLen is the longest run id.
const MaxRunIDLen = 128

// CheckRunID enforces [A-Za-z0-9][A-Za-z0-9._-]{0,127}: a run id names a
// directory, so it must be a single path element on every filesystem, and
// not "." or "..". The error's text names the rule.
func CheckRunID(id string) error {
	bad := len(id) == 0 || len(id) > MaxRunIDLen
	for i := 0; i < len(id) && !bad; i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		bad = !alnum && (i == 0 || c != '.' && c != '_' && c != '-')
	}
	if bad {
		return fmt.Errorf("run id %q is not valid: use 1 to %d letters, digits, '.', '_' or '-', starting with a letter or digit", id, MaxRunIDLen)
	}
	return nil
}

package local

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/runlog/runlog/client"
)

// dialTimeout bounds Dial's first read: a service that does not answer for
// the run within it is taken as none.
const dialTimeout = 3 * time.Second

// HeldError is returned by Open when another process holds a run's log and
// no service answers for the run. Its message names the holder, as far as
// it can be told, and what to do.
type HeldError struct {
	Ref
	// PID is the process holding the file's lock, 0 when unknown; Cmdline
	// its command line.
	PID     int
	Cmdline string
	// ServicePID is the pid in the root's service lock file, 0 when none.
	ServicePID int
	// Err is why no service answered.
	Err error
}

func (e *HeldError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "run %s is locked by another process", e.ID)
	switch {
	case e.PID != 0:
		fmt.Fprintf(&b, ": pid %d", e.PID)
		if e.Cmdline != "" {
			fmt.Fprintf(&b, " (%s)", e.Cmdline)
		}
	case e.ServicePID != 0:
		fmt.Fprintf(&b, ", probably the runlog service pid %d (from %s)", e.ServicePID, e.Root.Lock())
	}
	fmt.Fprintf(&b, ", and no service answers for it (%v). ", e.Err)
	switch {
	case e.ServicePID != 0 && (e.PID == 0 || e.PID == e.ServicePID):
		fmt.Fprintf(&b, "The service of %s may be starting or stuck: retry, or stop it (kill %d) and read the file directly.", e.Root, e.ServicePID)
	case e.PID != 0:
		fmt.Fprintf(&b, "Wait for pid %d to close %s, or stop it (kill %d). If it is a service of another root, pass that --root.", e.PID, e.Path, e.PID)
	default:
		fmt.Fprintf(&b, "Find the holder with `fuser %s` and wait for it or stop it.", e.Path)
	}
	return b.String()
}

func (e *HeldError) Unwrap() error { return e.Err }

// heldError finds who holds ref's log when no service answers for it.
func heldError(ref Ref, cause error) *HeldError {
	e := &HeldError{Ref: ref, Err: cause}
	e.PID, e.Cmdline = lockHolder(ref.Path)
	if info, err := client.ReadLock(string(ref.Root)); err == nil {
		e.ServicePID = info.PID
	}
	return e
}

// lockHolder finds the process holding a flock on path in /proc/locks
// (Linux); it returns 0 when it cannot tell.
func lockHolder(path string) (int, string) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, ""
	}
	locks, err := os.ReadFile("/proc/locks")
	if err != nil {
		return 0, ""
	}
	dev := uint64(st.Dev)
	major := (dev>>8)&0xfff | (dev>>32)&^uint64(0xfff)
	minor := dev&0xff | (dev>>12)&^uint64(0xff)
	want := fmt.Sprintf("%02x:%02x:%d", major, minor, st.Ino)
	for _, line := range strings.Split(string(locks), "\n") {
		f := strings.Fields(line)
		// "1: FLOCK ADVISORY WRITE 1234 08:01:5678 0 EOF"; waiters have "->".
		if len(f) < 6 || f[1] == "->" || f[5] != want {
			continue
		}
		pid, err := strconv.Atoi(f[4])
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		return pid, strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
	}
	return 0, ""
}

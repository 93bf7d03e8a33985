package mux

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"syscall"
)

// proc identifies a process on this machine: its pid and, where /proc tells,
// its start time, so a pid reused by a new process is not mistaken for the
// old one.
type proc struct {
	pid   int
	start uint64 // clock ticks after boot; 0 when unknown
}

func newProc(pid int) proc {
	p := proc{pid: pid}
	if pid > 0 {
		p.start, _ = procStat(pid)
	}
	return p
}

// alive reports whether p is still running, using isAlive for the pid.
func (p proc) alive(isAlive func(int) bool) bool {
	if p.pid <= 0 {
		return true // unknown process: only Finish or Teardown detach it
	}
	if !isAlive(p.pid) {
		return false
	}
	if p.start != 0 {
		if start, ok := procStat(p.pid); ok && start != p.start {
			return false
		}
	}
	return true
}

// processAlive is the default Options.ProcessAlive: signal 0 reaches the
// process and it is not a zombie.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	if err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // no /proc: trust the signal
	}
	state, _, ok := statFields(data)
	return !ok || (state != 'Z' && state != 'X')
}

// procStat returns the start time of pid from /proc/PID/stat.
func procStat(pid int) (uint64, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	_, start, ok := statFields(data)
	return start, ok
}

// statFields reads the state (field 3) and start time (field 22) of a
// /proc/PID/stat line. The command name (field 2) may hold spaces and
// parentheses, so fields are counted after its last ')'.
func statFields(data []byte) (state byte, start uint64, ok bool) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 || i+2 >= len(data) {
		return 0, 0, false
	}
	fields := bytes.Fields(data[i+2:])
	// fields[0] is field 3 (state); field 22 is fields[19].
	if len(fields) < 20 || len(fields[0]) != 1 {
		return 0, 0, false
	}
	start, err := strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return fields[0][0], start, true
}

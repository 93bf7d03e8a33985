//go:build unix

package wal

import (
	"os"
	"syscall"
)

// diskUsage is the space a file's blocks take, or its length where the
// platform does not say.
func diskUsage(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512
	}
	return fi.Size()
}

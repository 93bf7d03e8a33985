package wal

import "syscall"

// releaseMapped drops the pages of a shared, read-only file mapping from the
// page tables (MADV_DONTNEED). The data stays in the page cache and in the
// file; the next read faults it back in.
func releaseMapped(addr uintptr, size int64) {
	if size <= 0 {
		return
	}
	syscall.Syscall(syscall.SYS_MADVISE, addr, uintptr(size), syscall.MADV_DONTNEED)
}

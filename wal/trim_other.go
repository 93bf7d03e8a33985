//go:build !linux

package wal

// releaseMapped does nothing where MADV_DONTNEED's semantics for shared file
// mappings are not guaranteed.
func releaseMapped(addr uintptr, size int64) {}

//go:build !unix

package wal

import "os"

func diskUsage(fi os.FileInfo) int64 { return fi.Size() }

package wal

import "strings"

// Names the service and its upstream senders keep in a run's log. They are
// part of the file's layout (see the package doc), so they are defined here
// once for every package that reads or writes them.
const (
	// MetaSyncMode holds the sync mode a run was created with: "offline",
	// "online", or absent when its service decides.
	MetaSyncMode = "sync_mode"
	// CursorUpstreamPrefix starts the cursor of each upstream:
	// "upstream:<url>" is the last sequence that upstream acknowledged.
	CursorUpstreamPrefix = "upstream:"
	// MetaSyncErrorPrefix starts the meta key holding an upstream's last
	// sync error: "sync_error:<url>", absent once a push succeeds.
	MetaSyncErrorPrefix = "sync_error:"
)

// SyncErrors returns the last sync error of each upstream that has a cursor
// in cursors (as Cursors returns them), keyed by upstream URL; nil when there
// is none.
func (l *Log) SyncErrors(cursors map[string]uint64) map[string]string {
	var out map[string]string
	for url := range UpstreamCursors(cursors) {
		if v, err := l.Meta(MetaSyncErrorPrefix + url); err == nil && len(v) > 0 {
			if out == nil {
				out = make(map[string]string)
			}
			out[url] = string(v)
		}
	}
	return out
}

// UpstreamCursors returns the upstream cursors among cursors (as Cursors
// returns them), keyed by upstream URL: the last sequence each upstream
// acknowledged. It is nil when there is none.
func UpstreamCursors(cursors map[string]uint64) map[string]uint64 {
	var out map[string]uint64
	for name, seq := range cursors {
		if url, ok := strings.CutPrefix(name, CursorUpstreamPrefix); ok {
			if out == nil {
				out = make(map[string]uint64)
			}
			out[url] = seq
		}
	}
	return out
}

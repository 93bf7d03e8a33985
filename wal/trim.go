package wal

import (
	bolt "go.etcd.io/bbolt"
)

// trimEvery is how many bytes of records a log writes or reads between two
// releases of its mapped pages.
const trimEvery = 8 << 20

// noteTouched counts bytes of the file the process wrote or read through the
// map and releases the mapped pages every trimEvery bytes.
//
// bbolt reads the file through a shared memory map. Every page it touches
// (and the kernel maps the pages around each fault) stays in the process's
// resident set until the map goes away, so a log that is written or scanned
// for a long time would count most of its file as the service's memory. The
// pages are clean copies of the page cache: dropping them costs a page fault
// on the next touch, and keeps the resident set bounded.
func (l *Log) noteTouched(n int) {
	if l.touched.Add(int64(n)) < trimEvery {
		return
	}
	l.touched.Store(0)
	// Inside a read transaction bbolt holds its mmap lock, so the map
	// cannot be replaced while the pages are released.
	l.db.View(func(tx *bolt.Tx) error {
		releaseMapped(l.db.Info().Data, tx.Size())
		return nil
	})
}

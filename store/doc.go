// Package store is where synced runs land on the hub: an idempotent append by
// (run id, seq), the run index, and queries over what it holds.
//
// Store is the interface the hub serves from; Bolt implements it on one
// embedded bbolt file, Postgres on a PostgreSQL database that any number of
// hubs share. Nothing outside this package depends on either; the
// conformance suite in storetest runs against both.
//
// # Invariants
//
//   - A run holds exactly its records 1..HighWater, each stored once with the
//     bytes the run's log wrote. Append skips records at or below the mark
//     whose bytes equal the stored ones (duplicates of a resend), stores the
//     record at HighWater+1 and refuses one beyond it with a *GapError;
//     nothing is ever overwritten.
//   - A record at or below the mark whose bytes differ from the stored one
//     belongs to another run that uses the same run id: Append refuses the
//     whole append with a *MismatchError before storing any of it. The
//     comparison reads the stored record only for duplicates, which come
//     from resends and from a sender's first batch, which starts at the
//     mark to let the store check that it continues the same run.
//   - Append returns only after the transaction that holds the records has
//     committed with fsync. The high-water mark it returns is durable.
//   - Each run's derived state (a replay.State snapshot), its index entry and
//     its running digest are written in the same transaction as the records
//     they cover, so they always describe exactly 1..HighWater.
//   - An exit record is the last record of a run: a record after it is
//     refused with a *RecordError.
//
// # One file for the hub
//
// All runs share one bbolt file, DIR/hub.bolt. A single writer goroutine
// takes every Append that is queued, from any number of runs and streams,
// and commits them in one transaction with one fsync (group commit). That
// gives the parallelism per-run files would (many runs' batches share one
// fsync instead of paying one each) without per-run files' costs: one file
// handle, one memory map and one lock however many runs the hub holds, a run
// index that is updated atomically with the records, and ListRuns in a
// single read transaction. A hub that outgrows one file is meant to move to a
// database backend rather than to sharded files. Bolt.Stats counts the
// commits and the Append calls and records they carried, so the sharing shows
// as more than one append per commit.
//
// # On-disk layout
//
//	meta     "format" = "1"
//	index    key: run id; value: encoded runlog.v1.HubRun (the summary
//	         ListRuns returns: high-water mark, status, digest, times)
//	runs     key: run id; value: a nested bucket per run holding
//	           records  key: seq as 8-byte big-endian uint64, so bucket
//	                    order is log order; value: CRC-32C (Castagnoli) of
//	                    the record bytes, 4 bytes big-endian, followed by the
//	                    encoded runlog.v1.Record exactly as the run's log
//	                    stored it (the same value format as package wal)
//	           "state"  replay.State.MarshalBinary after the last record
//	           "digest" the running SHA-256 (its MarshalBinary state)
//
// The records buckets use FillPercent 1.0: keys only ever grow.
//
// The digest is SHA-256 over the records in sequence order, each preceded by
// its length as a 4-byte big-endian number (see Digest). A sender computes the
// same over its log to check that the hub holds exactly what it wrote.
//
// # PostgreSQL
//
// The schema is versioned SQL in migrations/, embedded in the binary and
// applied by OpenPostgres under a session advisory lock (table
// runlog_schema records the versions applied):
//
//	runs     one row per run: run_id (unique), high_water, and the derived
//	         state the bbolt store keeps in its run bucket (state, digest,
//	         rollup, entry), written with the records they cover
//	records  (run, seq) primary key; data, the record's bytes as the log
//	         stored them; step, set only on live history rows, with a
//	         partial index (run, step, seq) for history queries
//	output   (run, seq) of console output records
//	tiers    (run, level, idx) the completed blocks of the history tiers
//
// Append is one transaction: it locks the run's row (SELECT ... FOR UPDATE;
// a new run's row is inserted first), so appends of one run from any hub
// take turns and each sees the mark the previous one committed. It compares
// resent records with the stored ones, COPYs the new records, sends the
// rest in one pipelined batch and returns after the commit. A process keeps
// runs' folded state between appends and trusts it only while its mark
// equals the row's. Connection failures and database restarts are reported
// wrapping ErrUnavailable. Records carry no checksum of ours: PostgreSQL's
// page checksums (initdb --data-checksums) cover them.
//
// # Caveats
//
// bbolt locks the file: one hub process per store directory. Open fails with
// ErrLocked while another process holds it.
//
// Readers (History, Records) use short read transactions of bounded size, so
// a long query never keeps the writer from growing the memory map.
package store

// Package wal owns one run's write-ahead log: a single bbolt file that holds
// the run's records in sequence order, the named cursors of the workers that
// read it, and a little metadata.
//
// # Invariants
//
//   - Records are numbered 1, 2, 3, ... with no gaps. Append assigns the
//     sequence, a ULID that increases strictly within the run and a time that
//     never goes backwards, then writes the whole batch in one bbolt
//     transaction. Append returns only after that transaction has committed
//     with fsync: a record Append reported is on disk.
//   - An exit record is the last record of a run. Append refuses anything after
//     it with ErrFinished.
//   - A cursor never points past the last record.
//   - For every client id the log keeps the highest client sequence it holds,
//     in the same transaction as the records, so a resend after any crash can
//     be recognised.
//
// # On-disk layout
//
// The file is a bbolt database with four top-level buckets:
//
//	records  key: seq as 8-byte big-endian uint64, so bucket order is log order
//	         value: CRC-32C (Castagnoli) of the record bytes, 4 bytes big-endian,
//	         followed by the protobuf encoding of runlog.v1.Record (the
//	         framing and the header reads are package wire's)
//	cursors  key: cursor name (for example "upstream:grpc://hub:7070")
//	         value: seq as 8-byte big-endian uint64
//	clients  key: client id; value: highest client_seq, 8-byte big-endian
//	meta     key: name; value: bytes. "format" is "1"; "last_step" is the
//	         run's step floor as 8-byte big-endian int64 (absent: no history).
//	         The service adds "sync_mode", senders "sync_error:<url>" beside
//	         their cursors "upstream:<url>" (names.go).
//
// The records bucket uses FillPercent 1.0: keys only ever grow, so full pages
// halve the file and double the scan rate.
//
// # Caveats
//
// bbolt takes an exclusive lock on the file: while one process has a log open
// for writing, another process cannot open it at all (Open fails with
// ErrLocked after Options.LockTimeout). Tools that read a live run ask the
// process that holds it.
//
// Readers use short read transactions of bounded size (Scan, Read): a long
// read transaction would keep bbolt from growing its memory map and stall the
// writer.
package wal

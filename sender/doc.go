// Package sender pushes a run's log upstream: one Sender per (run,
// upstream) tails the run's log from where the upstream stands and sends its
// records in batches, several in flight, until the run is finished and every
// record is acknowledged.
//
// The log is a Source, an interface this package owns: a run's wal file
// (*wal.Log), or the same run read through the service that holds the file
// (package local). A Source that is also Marks keeps the sender's cursor and
// last error beside the records; one that is not is pushed all the same,
// from the upstream's mark, and keeps neither.
//
// # Invariants
//
//   - The upstream's high-water mark is the truth. Every push session starts
//     by asking for it and sends from the record at it, so a restart after
//     any crash resends at most what was in flight plus that one record, and
//     the upstream drops those duplicates by (run, seq) once it has checked
//     that their bytes are the ones it holds. The record at the mark is the
//     identity check: a different run that uses the same run id differs
//     there (every record carries the run's ULID and a time), and the
//     upstream refuses it with ALREADY_EXISTS rather than append the
//     different run's later records to the run it holds. The check record is
//     resent even when the upstream holds everything; it moves no mark and
//     is not counted as sent (Options.OnAck).
//   - The cursor "upstream:<URL>" in the run's wal moves only to a mark the
//     upstream acknowledged, never past it. It is written after acks (at most
//     every Options.CursorInterval while acks stream in, and whenever the
//     sender goes idle or stops), so it may lag the upstream but never leads
//     it.
//   - Records are forwarded as the wal stores them, checksum verified: the
//     upstream keeps the same bytes, and digests on both sides agree.
//   - A damaged record stops the push after the valid prefix before it: that
//     prefix is sent and acknowledged, then Run returns an error wrapping the
//     *wal.CorruptError.
//   - Memory is bounded whatever the backlog: the sender reads one batch at a
//     time (Options.BatchRecords records or Options.BatchBytes bytes, or a
//     single larger record) in short read transactions, into one reused
//     buffer, and at most Options.MaxInflight batches wait for acks, their
//     bytes held by the transport's flow control rather than by the sender.
//
// # Errors
//
// UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED and other transient
// failures are retried with exponential backoff and full jitter, capped at
// Options.BackoffMax. UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT,
// NOT_FOUND, ALREADY_EXISTS and UNIMPLEMENTED stop the sender at once: retrying cannot help,
// and a sender that retries them hammers the upstream. FAILED_PRECONDITION
// (a gap: the upstream lost records, or holds fewer than the cursor says)
// starts a new session from the upstream's mark. The last error is kept in
// the wal's meta key "sync_error:<URL>" and cleared by the next success, so
// `runlog runs` shows why a run is not syncing.
//
// # Offline
//
// Nothing in this package opens a connection until a Sender runs: DialHub is
// lazy. A service started with --offline, or a run opened offline, never
// starts a Sender (see Follower.Wants).
package sender

// Package mux is the runlog service: the gRPC server that training processes
// log to. It routes each run to its own write-ahead log (package wal),
// commits records in groups and acknowledges them only once they are on
// disk, tracks which client processes are attached to which run, and answers
// queries from the logs.
//
// # Files
//
// Everything lives under one root directory (ROOT, created with mode 0700),
// laid out as package root says: the lock file, flock'd by the running
// service and holding JSON {"pid","socket","tcp"}; the unix socket (mode
// 0600); one log per run under ROOT/runs.
//
// One service per root: Open fails with a *LockedError naming the running
// service's pid and socket. --port-file gets {"pid","unix","tcp"} once the
// service listens, written to a temporary name, fsynced, renamed and the
// directory fsynced. On a clean shutdown the socket, the port file and the
// lock file are removed.
//
// # Invariants
//
//   - Durable before ack. A PublishResponse covers only records whose
//     transaction committed with fsync. Its acked_client_seq is the client's
//     high-water in the run: every record of that client with a client_seq at
//     or below it is durable or was refused (and listed in a rejection).
//   - Group commit. Each open run has one writer goroutine. Publishers, from
//     any number of streams and clients, queue checked batches; the writer
//     takes everything queued (up to MaxCommitRecords records or
//     MaxCommitBytes bytes, and never past an exit record), writes it with
//     one wal.AppendEncoded, then answers each batch. The writer is the only
//     appender of an open run, so checks that depend on the run's state
//     (resends, the step floor) are made there, in log order. Service.Stats
//     counts the commits and the batches and records they carried.
//   - Records are forwarded as they arrived. A record is checked on the wire
//     (record.go) at least as strictly as the protobuf decoder would, the
//     header fields (seq, id, time, client_id, client_seq, synthesized) are
//     stripped and set by the log, and the payload bytes are written as
//     they came. Every record the service writes decodes.
//   - Resends are harmless; nothing else hides below the high-water.
//     client_seq numbers a client's records 1, 2, 3, ... in publish order,
//     without gaps. A record above the client's high-water (by at most
//     maxClientSeqSkip) is written and moves it. A record at or below it is
//     looked up by client_seq among the commit's records and then in the
//     log, read back from its end (resend.go): equal byte for byte to the
//     record found, it is a resend, acknowledged and not written again; a
//     different record under that client_seq (two processes sharing a
//     client id), no record at all (numbers going backwards) or a jump
//     further ahead is refused in-band (INVALID_ARGUMENT) without moving the
//     high-water. A client that reconnects resends everything above the
//     acked_client_seq Init returned. After a failed commit (a full disk)
//     the client's later batches are refused (UNAVAILABLE) until the failed
//     records are resent, so the high-water never passes a hole. The
//     contract is written in service.proto above PublishRequest.
//   - Bad input loses nothing. A record that is malformed, too large, has an
//     empty or invalid key, a negative step or a step below the run's floor,
//     or is an exit record, is refused in-band with a Rejection naming the
//     field and the fix; the other records of the batch are written. A batch
//     for an unknown run (NOT_FOUND), a finished run (FAILED_PRECONDITION), a
//     client that did not Init the run (FAILED_PRECONDITION) or that fails to
//     commit (RESOURCE_EXHAUSTED when the disk is full, UNAVAILABLE, INTERNAL)
//     gets PublishResponse.error and nothing of it is acknowledged. The
//     stream stays usable in every case; statusOf is the one place where
//     errors become codes.
//   - Bounded memory. A run's queue holds at most MaxQueueRecords records or
//     MaxQueueBytes bytes; a full queue stops its publishers, and a stream
//     with maxOutstanding unanswered batches stops reading, so the backlog
//     stays in the client and the gRPC flow-control windows. Queued records
//     are kept encoded (about their wire size).
//   - An exit record is the last record. Finish detaches the client; while
//     other clients are attached it only remembers the exit (the worst
//     reason wins: crashed over killed over failed over preempted over
//     finished) and answers closed=false. The last client's Finish queues the
//     exit behind everything already queued and answers closed=true with its
//     seq; a repeated Finish gets the same answer. After the exit the writer
//     stops and batches still queued are refused as for a finished run.
//     Only an attached client decides the exit: Finish from a client that
//     is not attached to the run (never called Init on it, or detached by
//     Teardown or the liveness poll) is refused with FAILED_PRECONDITION,
//     and a run left without clients ends by the crash grace.
//   - Crashed clients. Init records the client's pid (and its start time
//     from /proc, so a reused pid is not mistaken for it). Every
//     PollInterval the service checks attached clients; a gone client is
//     detached as if it had called Teardown. A run left without clients and
//     without an exit gets, after CrashGrace with nobody re-attaching, a
//     synthesized exit record (synthesized=true, reason CRASHED, a message
//     naming what happened). At startup every run without an exit record is
//     opened and falls under the same rule. Finish does not wait for the
//     poll: before it decides whether other clients remain, it checks them
//     and detaches those whose process is gone, so a run resumed after its
//     process crashed closes with the finishing client's exit at once,
//     instead of as crashed after the grace. A client that gave no pid is
//     only detached by Finish or Teardown.
//   - Every goroutine has an owner. The lifecycle goroutine of each run runs
//     its writer, then waits for its followers and readers, then closes the
//     log and unregisters the run; Publish's receiving goroutines and the
//     watcher belong to the service. Close waits for all of them.
//
// # Runs and clients
//
// A run id matches [A-Za-z0-9][A-Za-z0-9._-]{0,127}; an empty id in Init
// gets a lower-case ULID. Init with resume NEVER (or unspecified) on an
// existing run answers ALREADY_EXISTS, MUST on a missing one NOT_FOUND, and
// resuming a finished run FAILED_PRECONDITION. A new run's first record is
// its RunInfo (host and start time filled in when empty); on resume a
// RunInfo with any field set is appended as an update. An empty client id
// gets <host>-<pid>-<random>. A run created with a sync mode keeps it in the
// wal meta key MetaSyncMode for followers.
//
// Teardown(client_id) detaches the client from every run it has not
// finished; those runs then wait out the crash grace.
//
// # Reading
//
// Query, ListRuns, Read and Verify use the service's handle of an open run
// and a short read-only open of any other. Read sends records decoded, or,
// with ReadRequest.encoded, exactly as the log stores them (checksum
// verified, consecutive seqs): a copy made from those, such as runlog sync
// pushing a run the service holds, keeps the bytes that a hub's digest is
// computed over. A damaged or missing record ends a Read with DATA_LOSS
// after the records before it were sent.
//
// # Followers
//
// Options.Followers (for example upstream senders) tail the runs; see
// Follower. The service runs each Follow in a goroutine it owns and closes a
// run's log only after its writer and all its followers returned.
//
// # System stats and metrics
//
// With Options.Sampler, one goroutine of the service writes a system-stats
// record into every open run that has attached clients, every
// StatsInterval or the interval the run's last Init asked for (stats.go).
// Runs keep to a grid of their interval, so runs due together share one
// host sample; only the process part is per run. Samples go through the
// run's writer like the service's own records (no client id), so they are
// in the log, replayed and synced like any other record. Options.Metrics
// registers the service's Prometheus metrics (metrics.go), and Status
// (status.go) answers runlog status; both read sender lag from the runs'
// upstream cursors.
//
// # Shutdown
//
// Run returns after ctx is done (SIGTERM, SIGINT in the command), or, with
// ParentPID, once that process is gone and no run is open. Shutdown happens
// in layers: health goes NOT_SERVING and Init is refused; every writer
// commits and answers what is queued; Publish streams send those answers and
// end with UNAVAILABLE, Read streams end; the gRPC server stops gracefully
// (forcibly after ShutdownTimeout); followers are cancelled; logs are closed;
// the socket, port file and lock are removed.
//
// # Caveats
//
// The gRPC message limit is twice the batch limit (64 MiB, or twice the
// record limit if that is larger; see limits.go): a PublishRequest over the
// batch limit gets an in-band INVALID_ARGUMENT, but one over the message
// limit ends the stream, since gRPC reads a message whole before the
// service sees it. Every unary request is held to the record limit (plus
// 64 KiB), and what becomes a record (Init's info, Finish's exit) to the
// record limit as a record. Enum values that the schema does not define are
// refused everywhere. Running out of file descriptors is RESOURCE_EXHAUSTED;
// ListRuns lists the root through a directory handle kept open, so it
// still lists every run, each one it cannot open with its error. Liveness
// checks see processes on this machine only; a client on another machine
// (over --listen) should pass client_pid 0 and call Teardown. Query folds an
// open run incrementally (only records new since the last query), but the
// first query of a large run, and any query of a closed one, reads the whole
// log.
package mux

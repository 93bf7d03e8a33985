// Package local reads the runs of a runlog root on this machine: a run's
// log from its file, or, while the root's service holds the file (bbolt
// locks it), through that service's Read RPC. Either way a run is a
// replay.Source and a sender.Source, so runlog replay and runlog sync read
// a live run and a closed one with the same code.
//
// # Invariants
//
//   - Through the service, records arrive exactly as the log stores them
//     (ReadRequest.encoded), checked to carry consecutive seqs: every reader
//     produces the same bytes as from the file, and a hub's digest of a run
//     synced through the service equals the digest of the file.
//   - A damaged record found by the service ends a read with the same
//     *wal.CorruptError as from the file, after the records before it. It
//     crosses the process boundary typed, as a runlog.v1.CorruptRecord
//     detail of the DATA_LOSS status, never as text to cut apart.
//   - A run read through the service has no cursor storage (it is not a
//     sender.Marks): only the service writes the file. A push through it
//     moves no cursor; the upstream's mark decides what is sent.
//   - Memory is bounded: a Remote holds at most one response of the
//     service (bounded by the service's read chunk) beyond what the
//     transport's flow control holds.
//   - A log held by a process that is not a service answering for the run
//     is never read; Open returns a *HeldError naming the holder (from
//     /proc/locks on Linux, else the root's service lock file) and what to
//     do.
//
// Paths come from package root; nothing here joins them.
package local

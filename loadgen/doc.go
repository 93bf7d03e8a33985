// Package loadgen measures durable logging end to end: it logs runs through
// the Go client into a service of its own, times every ack, follows the
// service across restarts, and afterwards reads every run's log to check
// that each acknowledged record is there once. runlog bench is its flags
// and its printing.
//
// # What Run measures
//
//   - Throughput: acknowledged records per second, from the first log call
//     to the last ack.
//   - Ack latency: from each record's log call to the ack that covered it,
//     in a log-linear histogram (Histogram) of fixed size whose quantiles
//     are within about 3% of the truth, however many records there are.
//   - The service's peak resident memory (VmHWM from /proc), the largest of
//     every service that ran: the current one is sampled every
//     WatchEvery, and a service killed between two samples still counts
//     through the kernel's account of reaped children (getrusage).
//
// # Invariants
//
//   - The service may be SIGKILLed under Run as often as anyone likes: the
//     client starts another and resends what was not acknowledged, Run
//     follows whichever service ROOT/service.lock names, counts the
//     restarts, and still verifies every acknowledged record.
//   - Verification reads the logs only after the last service has stopped
//     (SIGTERM, then reaped): every step 0..Records-1 of every run must be
//     there exactly once, sequences gap-free, each log finished.
//   - Every goroutine Run starts is stopped before it returns; memory is
//     bounded by the runs' key count and a bit per record for the check.
//
// Paths come from package root; the wire format from package wire.
package loadgen

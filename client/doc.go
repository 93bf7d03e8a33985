// Package client is the Go client of the runlog service: it finds or starts
// the service, opens runs, and publishes their records with pipelined,
// acknowledged batches that survive a service restart.
//
//	c, err := client.Connect(ctx, client.Options{})
//	run, err := c.Init(ctx, client.RunOptions{Project: "mnist", Config: cfg})
//	for step := range steps {
//		run.Log(int64(step), map[string]any{"loss": loss})
//	}
//	err = run.Finish(ctx, 0) // everything logged is durable once this returns
//	c.Close()
//
// # Finding the service
//
// Connect tries Options.Address (default $RUNLOG_SERVICE), then the socket
// ROOT/service.sock (ROOT is Options.Root, $RUNLOG_DIR or ~/.runlog); an
// address answers when the gRPC health check does. If none answers it runs
// `runlog service --root ROOT --port-file ROOT/service-<random>.port
// --parent-pid <pid>` in a session of its own, stdout and stderr appended to
// ROOT/service.log, and waits (Options.StartTimeout) for the port file. When
// two clients start a service at once the service's lock lets one win; the
// loser's process exits and its client connects to the winner. A failed
// start is a *StartError naming ROOT/service.log and quoting its last lines.
// The client reaps services it started with non-blocking waits, at every
// SIGCHLD and whenever it checks on one, so a service that dies (SIGKILL in
// a crash loop) leaves no zombie behind while the client lives, and no
// goroutine waits for a process that outlives the client. A service that
// exits after Close is the process's to reap.
//
// # Publishing
//
// Every publishing call (Log, LogFloats, Config, Summary, Output, Alert,
// Rewind, Publish) checks its keys and values, encodes the record with the
// next client_seq (1-based per run handle) into the run's window and returns;
// it never touches the network. Bad input is an error at the call, wrapping
// ErrInvalid and naming the key; nothing is queued. History rows are encoded
// by hand (encode.go) because that path runs per record; everything else
// uses the generated code.
//
// The window holds a run's un-acknowledged records, bounded by
// Options.WindowRecords and Options.WindowBytes. A call whose record does
// not fit blocks until acks make room (backpressure, counted in
// Stats.WindowWaits); nothing is ever dropped to make room.
//
// One sender goroutine per Client sends every run's records on one Publish
// stream. It sends a run's records at once when none of its batches is in
// flight, and otherwise waits until a full batch (Options.BatchRecords,
// Options.BatchBytes) is ready, Options.Linger has passed or Flush asks, with
// up to Options.MaxInflight batches per run awaiting acks. The batch size
// thus follows the rate times the service's commit time. One receiver
// goroutine per stream applies the acks: acked_client_seq drops records from
// the window.
//
// # Durability and errors
//
// Flush returns once every record published before it is acknowledged: the
// service acks only what it has committed with fsync, or what it rejected.
// Rejected records (bad step order, too large, ...) are permanent: they leave
// the window, are counted in Stats.Rejected, and the next Flush (or Finish)
// returns a *RejectedError listing them; the other records are durable all
// the same. A batch-level RESOURCE_EXHAUSTED or UNAVAILABLE (disk full, or a
// batch behind a failed one) keeps the records and sends everything
// un-acked again after a growing pause. A batch-level NOT_FOUND or
// FAILED_PRECONDITION makes the sender re-attach the run (Init with
// resume=must): if that fails too, or the refusals repeat without progress,
// the run fails, and every later call on it returns the error, as it does
// for any other batch-level error.
//
// # Reconnecting
//
// When the stream breaks the client reaches a service again the way Connect
// does (starting one unless Options.NoStart; a start that finds the root
// locked by a live service waits for it, one locked by a service still
// exiting is tried again, one that exits before it answers is replaced at
// once), with backoff, for at most Options.ReconnectTimeout; after that
// every call fails with ErrGaveUp. Stats.Started counts the service
// processes the client started, so a restart shows there. On the new
// stream it re-attaches every open run with Init(resume=must, the same
// client id), drops what the service reports as acknowledged
// (acked_client_seq) and resends the rest; the service drops duplicates.
// Publishing calls keep working meanwhile and block only if the window fills.
// Init, Finish and the other unary calls wait for the new stream and are
// retried (Init makes the run id itself, so a retry names the same run). A
// client with no open run reconnects only when a call needs the service, so
// a service stopped on purpose is not started again behind the user's back.
//
// # Goroutines
//
// A Client owns its sender loop and the receiver of the current stream.
// Close flushes the open runs (for at most Options.CloseTimeout), sends
// Teardown for each, stops both goroutines and waits for them, and closes
// the connection. Runs not finished before Close stay open in the service,
// which closes them as crashed when the process is gone.
//
// # Caveats
//
// The service recognises a resend by the client's high-water client_seq, so
// the client relies on it to refuse (UNAVAILABLE) a batch whose first
// client_seq skips past that mark: after a retryable error, batches already
// in flight behind the failed one must not be written before its resend.
// The runlog service does this (mux.ErrResendFirst).
//
// All of a client's runs share one Publish stream; the service holds the
// stream while a run's queue is full. Options.MaxInflight times
// Options.BatchRecords is kept at what the service queues per run so that
// one busy run does not stall the others.
//
// Publish timestamps for Options.OnAck are taken only when it is set.
package client

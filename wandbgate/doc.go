// Package wandbgate serves the wandb SDK's service protocol and moves runs
// between runlog and .wandb files.
//
// # Front door
//
// A Gate answers SDK connections (frames of package wandbwire) and writes
// each wandb run as the runlog run of the same id through one runlog
// client. Invariants:
//
//   - Every request that awaits an answer gets one, at once; kinds runlog
//     does not serve get an empty answer and one log line.
//   - exit_result leaves only after the run's exit record and every record
//     before it are durable, so wandb.finish() returning means durable.
//     get_summary is answered after the same flush.
//   - log() awaits no answer: translated records wait in the gate for at
//     most 5ms or 512 records before they go to the client, so the service
//     commits rows in batches. A SIGKILL of the service loses at most those
//     and the client's un-acked window, never a record before the last
//     answered exit or get_summary.
//   - Several SDK processes on one run id (wandb's shared mode) write
//     through one client.Run. A row whose step is below the run's next step
//     is written at the next step, so rows interleave in arrival order and
//     none is dropped. The run finishes when the last attached process
//     exits, with the first failing exit code; a finished run cannot be
//     joined again.
//
// RunWithService stands a Gate before a runlog service: on ROOT/wandb.sock
// (SocketPath) and, optionally, on a loopback TCP port written to
// ROOT/wandb.port (PortPath). The door opens before the service is ready
// and closes before it drains; ServiceEnv is the WANDB_SERVICE value that
// points the SDK at it.
//
// # Import and export
//
// Import translates a .wandb file through the same Translator, keeping
// the valid prefix of a damaged file. The summary records wandb's core
// derives after every row are merged (the same final summary at a third of
// the records). Each imported record's wandb record number is kept in the
// run's config under RecordNumsKey. Export writes the offline run
// directory wandb sync reads; config keys under _wandb/ stay out of it.
package wandbgate

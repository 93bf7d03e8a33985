// Package root owns the layout of a runlog root, the directory that one
// service and its runs live in, and how a command finds it:
//
//	ROOT/service.lock             flock'd by the running service; JSON {"pid","socket","tcp"}
//	ROOT/service.sock             the service's unix socket (mode 0600)
//	ROOT/service.log              the output of a service a client started
//	ROOT/runs/<run-id>/wal.bolt   one log per run
//
// # Invariants
//
//   - Every path under a root is built by a function of this package;
//     nobody else joins these names. Adding a file to the layout touches
//     this package only.
//   - Resolve is the one resolver: --root, else $RUNLOG_DIR, else
//     ~/.runlog, made absolute once, there. The paths built from its
//     result are absolute.
//   - A run id is a legal directory name by construction (CheckRunID): it
//     cannot name a parent, hold a separator or start with a dot, so a
//     run's paths stay inside ROOT/runs.
//
// It depends on the standard library only, so that every package, the Go
// client included, can use it.
package root

"""runlog: crash-safe experiment tracking.

    import runlog
    run = runlog.init(project="mnist", config={"lr": 1e-3, "layers": [64, 64]})
    for step in range(1000):
        run.log({"train/loss": loss, "train/acc": acc}, step=step)
    run.summary["best_acc"] = best
    run.finish()

Invariants:

- Every record queued before ``run.flush()`` or ``run.finish()`` returns is
  fsynced in the run's write-ahead log by the local runlog service. A record
  the service refuses makes flush()/finish() raise RecordsRejectedError with
  the reason (and is logged as a warning when the answer arrives); nothing is
  dropped silently.
- ``run.log()`` never waits for the network: it checks and copies the row and
  queues it. A background thread encodes and batches rows onto the service's
  Publish stream. When the bounded queue is full, log() waits and
  ``run.stats()["queue_full_waits"]`` counts it.
- Bad keys and values raise TypeError or ValueError naming the key, before
  anything of the call is queued; the run stays usable.
- Client sequences are 1-based per (run, client) in queue order. After the
  service was lost the client starts or reconnects to it, resumes the run
  with the same client id and resends everything the service does not hold;
  the service drops duplicates, so every record is in the log exactly once.
- Memory is bounded by Options.queue_size entries plus Options.max_in_flight
  batches, whatever the service does.

Values: history rows take int (64-bit), float (NaN and infinities kept),
bool, str, numpy scalars and 0-d arrays; nested dicts are flattened into
"parent/child" keys. Config keeps nested dicts nested: each top-level key
holds one value, and dicts, lists and None travel as JSON. Summary flattens
nested dicts like history and stores lists as JSON.

The service is found at $RUNLOG_SERVICE, else ROOT/service.sock, where ROOT is
init's dir, else $RUNLOG_DIR, else ~/.runlog. When none answers, the client
starts $RUNLOG_BIN (or ``runlog`` on PATH) as ``runlog service --root ROOT``.

Several processes can log to one run: each calls ``runlog.init(id=RUN,
resume="allow")`` and gets its own client id; the run closes when the last
of them finishes. History steps are the run's: processes that log history
to a shared run must agree on steps (the usual pattern is that rank 0 logs
history and every rank logs console output, summary and alerts).
"""

from __future__ import annotations

from typing import Any, List, Mapping, Optional

from runlog._run import Config, Options, Run, Summary
from runlog.errors import (
    RecordsRejectedError,
    Rejection,
    RunClosedError,
    RunlogError,
    ServiceNotFoundError,
    ServiceStartError,
    ServiceUnavailableError,
)

__all__ = [
    "Config",
    "Options",
    "RecordsRejectedError",
    "Rejection",
    "Run",
    "RunClosedError",
    "RunlogError",
    "ServiceNotFoundError",
    "ServiceStartError",
    "ServiceUnavailableError",
    "Summary",
    "finish",
    "init",
    "log",
]

__version__ = "0.1.0"

_current: Optional[Run] = None


def init(
    project: Optional[str] = None,
    name: Optional[str] = None,
    id: Optional[str] = None,
    group: Optional[str] = None,
    tags: Optional[List[str]] = None,
    notes: Optional[str] = None,
    config: Optional[Mapping[str, Any]] = None,
    resume: str = "never",
    mode: str = "online",
    dir: Optional[str] = None,
    *,
    job_type: Optional[str] = None,
    capture_console: bool = True,
    resume_from: Optional[int] = None,
    options: Optional[Options] = None,
    stats: bool = True,
    stats_interval: Optional[float] = None,
) -> Run:
    """Starts (or resumes) a run and makes it the current run.

    resume: "never" (the id must be new), "allow" (resume when it exists)
    or "must" (it must exist). mode: "online" or "offline" (never synced
    upstream by the service). dir: the service's ROOT. resume_from: restart
    history at that step (a rewind). capture_console: record stdout and
    stderr lines. stats=False: no system-stats records (CPU, memory, disk,
    network, GPUs) in this run; stats_interval: seconds between them instead
    of the service's --stats-interval. Raises RunlogError when the service refuses the run and
    ServiceNotFoundError/ServiceStartError when no service can be reached.
    """
    global _current
    run = Run(
        project=project,
        name=name,
        id=id,
        group=group,
        tags=tags,
        notes=notes,
        job_type=job_type,
        config=config,
        resume=resume,
        mode=mode,
        dir=dir,
        capture_console=capture_console,
        resume_from=resume_from,
        options=options,
        stats=stats,
        stats_interval=stats_interval,
    )
    _current = run
    return run


def _need_run() -> Run:
    if _current is None:
        raise RunlogError("no current run: call runlog.init() first")
    return _current


def log(data: Mapping[str, Any], step: Optional[int] = None, commit: bool = True) -> None:
    """Logs a row to the current run (see Run.log)."""
    _need_run().log(data, step=step, commit=commit)


def finish(exit_code: int = 0, **kwargs: Any) -> None:
    """Finishes the current run (see Run.finish)."""
    global _current
    run = _need_run()
    try:
        run.finish(exit_code, **kwargs)
    finally:
        if _current is run:
            _current = None


def __getattr__(name: str) -> Any:
    # runlog.run, runlog.config and runlog.summary follow the current run.
    if name == "run":
        return _current
    if name in ("config", "summary"):
        return getattr(_need_run(), name)
    raise AttributeError(f"module 'runlog' has no attribute {name!r}")

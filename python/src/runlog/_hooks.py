"""Process lifecycle: finishing runs the program did not finish itself.

Installed once, when the first run registers:

  sys.excepthook  an uncaught exception finishes every open run as failed,
                  with the traceback as the exit message, after the previous
                  hook printed it (so console capture records it too);
  atexit          a run the script forgot is finished and its client torn
                  down: exit code 0, finished, unless the main thread
                  called sys.exit(n) (wrapped to remember n: Python tells
                  atexit handlers nothing about the exit status), which
                  finishes it with code n, failed;
  SIGTERM         open runs are finished as killed, or as preempted when
                  the run was marked with run.mark_preempting() or
                  $RUNLOG_PREEMPTIBLE is 1/true/yes (set it in the job script
                  of a preemptible partition or spot instance: schedulers
                  send the same SIGTERM for both, only the job knows). The
                  handler itself only unwinds the main thread with
                  SystemExit (finally blocks run, as a program expects of a
                  termination); the runs are finished from atexit, and then
                  the process is terminated by SIGTERM again, as it would
                  have been. Finishing inside the handler would run on top
                  of whatever the main thread was doing, possibly the client
                  itself holding its lock. When the program installed its
                  own SIGTERM handler first, that handler runs instead of
                  the unwinding, on every SIGTERM, and the runs finish as
                  killed or preempted whenever the program exits. A run
                  whose finish() the signal interrupted is completed from
                  atexit with the exit that finish() was given.
  fork            a forked child forgets the parent's runs: their threads
                  and connections do not exist in the child.

Python runs signal handlers in the main thread only, and the kernel may
deliver a process's signal to any thread that does not block it: a SIGTERM
that lands on one of the client's threads while the main thread waits in a
system call (reading a pipe, sleeping) would not run the handler until that
call returns. The client's threads, and the gRPC threads started while a
run is being opened, therefore block SIGINT and SIGTERM (block_signals).

The SIGTERM handler is installed only from the main thread and only when the
current handler is the default or a Python function (ignored SIGTERM stays
ignored).
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import weakref
from typing import Any, Callable, List

from runlog import _console

# Re-entrant: the SIGTERM handler may run while the main thread holds it.
_mu = threading.RLock()
# protects _runs, _all and _installed
_runs: List[Any] = []
# Every live run, hooks or not, so a forked child can disown them all.
_all: "weakref.WeakSet[Any]" = weakref.WeakSet()
_installed = False
_fork_hook = False
_prev_excepthook: Any = None
_prev_sigterm: Any = None
_prev_exit: Any = None
# The argument of sys.exit when the main thread called it, else _NO_EXIT.
_NO_EXIT = object()
_exit_arg: Any = _NO_EXIT
# The signal that started a termination, set by the SIGTERM handler.
_terminating: Any = None


def track(run: Any) -> None:
    """Remembers run so that a forked child disowns it."""
    global _fork_hook
    with _mu:
        _all.add(run)
        if _fork_hook:
            return
        _fork_hook = True
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork)


def register(run: Any) -> None:
    global _installed
    with _mu:
        _runs.append(run)
        if _installed:
            return
        _installed = True
    _install()


def unregister(run: Any) -> None:
    with _mu:
        if run in _runs:
            _runs.remove(run)


def open_runs() -> List[Any]:
    with _mu:
        return list(_runs)


# Signals the client's threads leave to the main thread.
_MAIN_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def block_signals() -> Callable[[], None]:
    """Blocks SIGINT and SIGTERM in the calling thread and returns what
    restores its mask. Threads started in between inherit the blocked mask;
    a signal that arrives meanwhile stays pending for the main thread (or
    is delivered when the mask is restored)."""
    if not hasattr(signal, "pthread_sigmask"):
        return lambda: None
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _MAIN_SIGNALS)
    return lambda: signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _install() -> None:
    global _prev_excepthook, _prev_sigterm, _prev_exit
    _prev_excepthook = sys.excepthook
    sys.excepthook = _excepthook
    _prev_exit = sys.exit
    sys.exit = _exit
    atexit.register(_atexit)
    if threading.current_thread() is threading.main_thread():
        try:
            cur = signal.getsignal(signal.SIGTERM)
        except (ValueError, OSError):
            return
        if cur == signal.SIG_DFL or callable(cur):
            _prev_sigterm = cur
            signal.signal(signal.SIGTERM, _on_sigterm)


def _finish_all(code: int, reason: str, message: str) -> None:
    for run in reversed(open_runs()):
        try:
            run.finish(code, reason=reason, message=message)
        except Exception as e:
            try:
                run._log.error("runlog: finishing run %s failed: %s", run.id, e)
            except Exception:
                pass


def _excepthook(exc_type, exc, tb) -> None:
    from runlog._run import exit_for_exception

    prev = _prev_excepthook or sys.__excepthook__
    try:
        prev(exc_type, exc, tb)
    finally:
        code, reason, message = exit_for_exception(exc_type, exc, tb)
        _finish_all(code, reason, message)


def _exit(status: Any = None) -> None:
    global _exit_arg
    if threading.current_thread() is threading.main_thread():
        # In another thread sys.exit ends only that thread.
        _exit_arg = status
    _prev_exit(status)


def _atexit() -> None:
    sig = _terminating
    if sig is None:
        if _exit_arg is _NO_EXIT:
            _finish_all(0, "finished", "")
        else:
            from runlog._run import exit_for_exception

            _finish_all(*exit_for_exception(SystemExit, SystemExit(_exit_arg), None))
        return
    for run in reversed(open_runs()):
        reason = "preempted" if preempted(run) else "killed"
        try:
            run.finish(128 + sig, reason=reason, message=signal.Signals(sig).name)
        except Exception as e:
            try:
                run._log.error("runlog: finishing run %s failed: %s", run.id, e)
            except Exception:
                pass
    if _prev_sigterm == signal.SIG_DFL:
        # End as the default handler would have: killed by the signal. What
        # Python would flush at exit is flushed now.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)


def preempted(run: Any) -> bool:
    flag = os.environ.get("RUNLOG_PREEMPTIBLE", "").strip().lower()
    return bool(getattr(run, "_preempting", False)) or flag in ("1", "true", "yes")


def _on_sigterm(signum, frame) -> None:
    global _terminating
    prev = _prev_sigterm
    if callable(prev):
        # The program's own handler decides, every time it is signalled.
        if _terminating is None:
            _terminating = signum
        prev(signum, frame)
        return
    if _terminating is not None:
        return  # already on the way out; a scheduler that insists sends SIGKILL
    _terminating = signum
    raise SystemExit(128 + signum)


def _after_fork() -> None:
    global _mu
    _mu = threading.RLock()
    for run in list(_all):
        run._abandon()
    _all.clear()
    _runs.clear()
    _console.reset_after_fork()

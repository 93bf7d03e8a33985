"""Console capture: stdout and stderr lines become output records.

sys.stdout and sys.stderr are replaced by tees that write everything to the
real stream first, then hand each complete line to the capturing run. Text
without a newline waits for the rest of its line (at most _MAX_PARTIAL
characters, then it is sent as it is). Each record's text ends with the
newline, so joining the records gives back the output.

Writes from the client's own threads, and writes made while a tee is already
handing a line to the run (a warning printed by the client itself), reach the
terminal but are not captured: capture never recurses.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Optional, Set

_MAX_PARTIAL = 16384

# Thread idents whose writes are never captured (sender and reader threads).
_ignored: Set[int] = set()
_local = threading.local()
# Re-entrant, as are the tees' locks: the SIGTERM handler finishes runs (and
# so drains the tees) on the main thread, possibly in the middle of a write.
_mu = threading.RLock()
# protects _target and the installed tees
_target: Any = None
_tees: list = []


def ignore_thread(t: threading.Thread) -> None:
    """Marks a client thread (before it starts) as never captured."""
    orig = t.run

    def run() -> None:
        ident = threading.get_ident()
        _ignored.add(ident)
        try:
            orig()
        finally:
            _ignored.discard(ident)

    t.run = run  # type: ignore[method-assign]


class _Tee:
    """Wraps a text stream; forwards everything else to it."""

    def __init__(self, stream: Any, name: str):
        self._stream = stream
        self._name = name
        self._buf = ""
        self._lock = threading.RLock()
        # protects _buf

    def write(self, s: str) -> int:
        n = self._stream.write(s)
        run = _target
        if run is None or not s or threading.get_ident() in _ignored:
            return n
        if getattr(_local, "busy", False):
            return n
        with self._lock:
            buf = self._buf + s
            if "\n" in s:
                lines = buf.split("\n")
                self._buf = lines.pop()
                out = [line + "\n" for line in lines]
            elif len(buf) >= _MAX_PARTIAL:
                self._buf = ""
                out = [buf]
            else:
                self._buf = buf
                return n
        self._emit(run, out)
        return n

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def _emit(self, run: Any, texts) -> None:
        _local.busy = True
        try:
            for t in texts:
                run.output(self._name, t)
        except Exception:  # a failed run must not break print()
            pass
        finally:
            _local.busy = False

    def drain(self, run: Any) -> None:
        """Sends a partial last line."""
        with self._lock:
            buf, self._buf = self._buf, ""
        if buf:
            self._emit(run, [buf])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def attach(run: Any) -> None:
    """Makes run the capturing run, installing the tees if needed."""
    global _target
    with _mu:
        _target = run
        for name in ("stdout", "stderr"):
            cur = getattr(sys, name)
            if cur is None or isinstance(cur, _Tee):
                continue
            tee = _Tee(cur, name)
            setattr(sys, name, tee)
            _tees.append(tee)


def detach(run: Any) -> None:
    """Stops capturing for run: sends partial lines, restores the streams
    when nobody replaced them since."""
    global _target
    with _mu:
        if _target is not run:
            return
        for tee in _tees:
            tee.drain(run)
        _target = None
        _restore_locked()


def _restore_locked() -> None:
    for tee in _tees:
        if getattr(sys, tee._name) is tee:
            setattr(sys, tee._name, tee._stream)
    _tees.clear()


def reset_after_fork() -> None:
    """In a forked child nothing is captured: the run belongs to the parent."""
    global _target, _mu
    _mu = threading.Lock()
    _target = None
    _ignored.clear()
    _restore_locked()


def current() -> Optional[Any]:
    return _target

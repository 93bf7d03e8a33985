"""The run handle and the sender thread that publishes its records.

Threads. Each Run owns two threads, both daemon threads so an interpreter
that exits without finish() still reaches the atexit hook that finishes the
run:

  sender  takes entries from the run's queue, assigns client sequences,
          encodes and batches them onto the Publish stream, keeps the
          un-acked window, reconnects when the stream breaks;
  reader  one per Publish stream: reads acks and rejections.

finish() stops both and waits for them; so does the atexit hook.

Memory. The queue holds at most Options.queue_size entries (log() waits for
room beyond that and counts the wait) and the window at most
Options.max_in_flight batches: a service that is down or slow stalls the
caller, it never grows memory without bound.

Durability. client_seq n is the n-th entry queued. flush() waits until the
service's acked_client_seq reaches the count queued before the call, which
means every one of those records is fsynced in the run's log (or was
rejected, and flush() raises with the reasons).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import queue
import secrets
import socket
import sys
import threading
import time
import traceback
from collections.abc import Mapping, MutableMapping
from typing import Any, Dict, Iterator, List, Optional

import grpc

from runlog import _console, _hooks
from runlog._service import Service, resolve_root
from runlog._values import (
    INT64_MAX,
    INT64_MIN,
    config_items,
    flatten,
    items_pb,
    summary_items,
)
from runlog._wire import HistoryEncoder
from runlog.errors import (
    Rejection,
    RecordsRejectedError,
    RunClosedError,
    RunlogError,
    ServiceNotFoundError,
    ServiceStartError,
    ServiceUnavailableError,
)
from runlog.v1 import record_pb2, service_pb2, service_pb2_grpc


@dataclasses.dataclass
class Options:
    """Tuning and test seams for a run. The defaults work.

    queue_size: entries queued before log() waits for the sender.
    batch_records, batch_bytes: upper bounds of one Publish batch.
    max_in_flight: batches sent and not yet acknowledged.
    start_timeout: seconds to wait for a service this client started.
    reconnect_timeout: seconds to keep trying after the service is lost
        before the run fails with ServiceUnavailableError.
    rpc_timeout: deadline of the unary calls (Init, Finish).
    binary: the runlog binary (default $RUNLOG_BIN, then PATH).
    address: a service address (default $RUNLOG_SERVICE, then
        ROOT/service.sock).
    logger: where the client reports problems (default logging "runlog").
    hooks: finish the run from sys.excepthook, atexit and SIGTERM.
    """

    queue_size: int = 8192
    batch_records: int = 4096
    batch_bytes: int = 4 << 20
    max_in_flight: int = 8
    start_timeout: float = 30.0
    reconnect_timeout: float = 120.0
    rpc_timeout: float = 30.0
    binary: Optional[str] = None
    address: Optional[str] = None
    logger: Optional[logging.Logger] = None
    hooks: bool = True


_HISTORY = 0
_OTHER = 1

_RESUME = {
    "never": service_pb2.RESUME_MODE_NEVER,
    "allow": service_pb2.RESUME_MODE_ALLOW,
    "must": service_pb2.RESUME_MODE_MUST,
}
_MODE = {
    "online": service_pb2.SYNC_MODE_ONLINE,
    "offline": service_pb2.SYNC_MODE_OFFLINE,
}
_ALERT_LEVEL = {
    "info": record_pb2.Alert.LEVEL_INFO,
    "warn": record_pb2.Alert.LEVEL_WARN,
    "warning": record_pb2.Alert.LEVEL_WARN,
    "error": record_pb2.Alert.LEVEL_ERROR,
}
_REASON = {
    "finished": record_pb2.EXIT_REASON_FINISHED,
    "failed": record_pb2.EXIT_REASON_FAILED,
    "crashed": record_pb2.EXIT_REASON_CRASHED,
    "killed": record_pb2.EXIT_REASON_KILLED,
    "preempted": record_pb2.EXIT_REASON_PREEMPTED,
}
# Batch-level errors after which the batch is sent again later.
_RETRYABLE = {
    grpc.StatusCode.RESOURCE_EXHAUSTED.value[0],
    grpc.StatusCode.UNAVAILABLE.value[0],
    grpc.StatusCode.DEADLINE_EXCEEDED.value[0],
    grpc.StatusCode.ABORTED.value[0],
}
# Rejections kept for the next RecordsRejectedError; more are only counted.
_MAX_REJECTIONS = 100
_CODE_NAMES = {c.value[0]: c.name for c in grpc.StatusCode}


def _code_name(code: int) -> str:
    return _CODE_NAMES.get(code, str(code))


def _rpc_error(op: str, e: grpc.RpcError) -> RunlogError:
    code = e.code()
    return RunlogError(f"{op}: {code.name}: {e.details()}", code=code.name)


def _as_step(step: Any) -> int:
    if isinstance(step, bool) or not hasattr(step, "__index__"):
        raise TypeError(f"step must be an integer, not {type(step).__name__}")
    s = step.__index__()
    if s < 0 or s > INT64_MAX:
        raise ValueError(f"step {s} is out of range; steps are 0 .. 2**63-1")
    return s


class _Window:
    """Batches sent and not yet acknowledged, oldest first.

    Owned by the sender thread."""

    def __init__(self) -> None:
        # [first_client_seq, last_client_seq, records]
        self.batches: collections.deque = collections.deque()
        self.records = 0

    def drop_acked(self, acked: int) -> None:
        b = self.batches
        while b and b[0][1] <= acked:
            self.records -= len(b.popleft()[2])
        if b and b[0][0] <= acked:
            first, last, recs = b[0]
            cut = acked - first + 1
            b[0] = [acked + 1, last, recs[cut:]]
            self.records -= cut

    def pending(self) -> Iterator[List[bytes]]:
        for _, _, recs in self.batches:
            yield recs


class _Stream:
    """One Publish call: its request queue, the call and its reader thread."""

    def __init__(self, stub, run: "Run", number: int):
        self.number = number
        self.requests: "queue.SimpleQueue[Optional[service_pb2.PublishRequest]]" = (
            queue.SimpleQueue()
        )
        self.call = stub.Publish(self._iter())
        self.reader = threading.Thread(
            target=run._read_acks,
            args=(self,),
            name=f"runlog-acks-{run.id}",
            daemon=True,
        )
        _console.ignore_thread(self.reader)
        self.reader.start()

    def _iter(self):
        while True:
            req = self.requests.get()
            if req is None:
                return
            yield req

    def close(self) -> None:
        self.requests.put(None)
        self.call.cancel()
        self.reader.join()


class Config(MutableMapping):
    """The run's configuration. Setting or deleting keys publishes a config
    update; update() publishes one update for all its keys.

    Top-level keys keep their value: scalars typed, dicts, lists and None as
    JSON (nested dicts stay nested). Keys are also readable as attributes.
    """

    _what = "config"

    def __init__(self, run: "Run"):
        object.__setattr__(self, "_run", run)
        object.__setattr__(self, "_data", {})
        object.__setattr__(self, "_known", set())

    def _check(self, data: Mapping) -> Dict[str, Any]:
        return config_items(data, self._known)

    def _publish(self, items: Dict[str, Any], remove: List[str]) -> None:
        self._run._publish_kv(self._what, items, remove)

    def update(self, other: Any = (), **kwargs: Any) -> None:  # type: ignore[override]
        data = dict(other, **kwargs) if kwargs or not isinstance(other, Mapping) else other
        items = self._check(data)
        if not items:
            return
        self._publish(items, [])
        self._data.update(items)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        if key not in self._data:
            raise KeyError(key)
        self._publish({}, [key])
        del self._data[key]

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            self[name] = value

    def as_dict(self) -> Dict[str, Any]:
        return dict(self._data)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._data!r})"


class Summary(Config):
    """The run's summary: like Config, but nested dicts are flattened into
    "parent/child" keys, as history keys are."""

    _what = "summary"

    def _check(self, data: Mapping) -> Dict[str, Any]:
        return summary_items(data, self._known)



class Run:
    """A run: what runlog.init returns.

    log(), config, summary, alert() and rewind() only queue; flush() and
    finish() wait for the service. Safe for use from several threads of one
    process. A Run belongs to the process that created it: after a fork the
    child must call runlog.init(id=..., resume="allow") itself.
    """

    def __init__(
        self,
        *,
        project: Optional[str] = None,
        name: Optional[str] = None,
        id: Optional[str] = None,
        group: Optional[str] = None,
        tags: Optional[List[str]] = None,
        notes: Optional[str] = None,
        job_type: Optional[str] = None,
        config: Optional[Mapping] = None,
        resume: str = "never",
        mode: str = "online",
        dir: Optional[str] = None,
        capture_console: bool = True,
        resume_from: Optional[int] = None,
        options: Optional[Options] = None,
        stats: bool = True,
        stats_interval: Optional[float] = None,
    ):
        opts = options or Options()
        if stats_interval is not None and stats_interval <= 0:
            raise ValueError(f"stats_interval must be positive seconds; got {stats_interval!r}")
        # The last Init decides a run's sampling: re-attaching repeats it.
        self._stats = dict(
            stats_disabled=not stats,
            stats_interval_ms=int(stats_interval * 1000) if stats_interval else 0,
        )
        if resume not in _RESUME:
            raise ValueError(f"resume must be one of never, allow, must; got {resume!r}")
        if mode not in _MODE:
            raise ValueError(f"mode must be online or offline; got {mode!r}")
        self._opts = opts
        self._log = opts.logger or logging.getLogger("runlog")
        self.dir = resolve_root(dir)
        self._pid = os.getpid()
        host = socket.gethostname()
        self.client_id = f"{host}-{self._pid}-{secrets.token_hex(4)}"

        # Checked before anything is sent, so a bad config fails the call.
        self.config = Config(self)
        self.summary = Summary(self)
        init_config = self.config._check(config) if config else {}

        self._mu = threading.RLock()
        # protects everything below up to the sender's own state
        self._room = threading.Condition(self._mu)
        self._acked_cv = threading.Condition(self._mu)
        self._q: collections.deque = collections.deque()
        self._qmax = max(1, opts.queue_size)
        self._enqueued = 0
        self._acked = 0
        self._sent = 0
        self._fatal: Optional[BaseException] = None
        self._rejections: List[Rejection] = []
        self._rejected_total = 0
        self._rejected_unreported = 0
        self._closed = False
        # Set by the first finish(): (exit code, reason, message, records
        # to wait for).
        self._exit: Optional[tuple] = None
        self._finished = False
        self._broken: Optional[str] = None
        self._retry_at: Optional[float] = None
        self._retry_delay = 0.05
        self._stream_number = 0
        self._sleeping = False
        self._stop = False
        self._waits = 0
        self._wait_seconds = 0.0
        self._reconnects = 0
        self._batches = 0
        self._pending: Optional[Dict[str, Any]] = None
        self._pending_step = 0
        self._hkeys: set = set()
        self._wake = threading.Event()
        # Set when the run shuts down; also the sender's backoff timer.
        self._stop_event = threading.Event()
        self._preempting = False

        # Threads started from here on (gRPC's own, the sender and the
        # threads it starts) inherit a signal mask without SIGINT and
        # SIGTERM, so these reach the main thread (see _hooks.block_signals).
        unblock = _hooks.block_signals()
        try:
            self._service = Service(
                self.dir,
                address=opts.address,
                binary=opts.binary,
                start_timeout=opts.start_timeout,
                logger=self._log,
            )
            self._channel, _ = self._service.connect()
            self._stub = service_pb2_grpc.RunlogStub(self._channel)
            info = record_pb2.RunInfo(
                project=project or "",
                name=name or "",
                group=group or "",
                tags=list(tags or []),
                notes=notes or "",
                host=host,
                program=os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else "",
                args=list(sys.argv[1:]),
                job_type=job_type or "",
                start_time_unix_nano=time.time_ns(),
            )
            try:
                resp = self._stub.Init(
                    service_pb2.InitRequest(
                        run_id=id or "",
                        resume=_RESUME[resume],
                        mode=_MODE[mode],
                        client_id=self.client_id,
                        info=info,
                        client_pid=self._pid,
                        **self._stats,
                    ),
                    timeout=opts.rpc_timeout,
                )
            except grpc.RpcError as e:
                self._channel.close()
                raise _rpc_error(f"init run {id or '(new)'}", e) from None
            self.id: str = resp.run_id
            self.client_id = resp.client_id or self.client_id
            self.resumed: bool = resp.resumed
            self.path: str = resp.path
            self.project = project
            self.name = name
            self.max_record_bytes: int = resp.max_record_bytes
            self._acked = resp.acked_client_seq
            # The step floor: a row may not use a lower step. -1: no history yet.
            self._last_step: int = resp.last_step
            self._next_step: int = resp.last_step + 1
            self._encoder = HistoryEncoder(self.client_id)
            self._window = _Window()
            self._cseq = resp.acked_client_seq
            self._enqueued = resp.acked_client_seq
            self._stream: Optional[_Stream] = None

            self._sender = threading.Thread(
                target=self._send_main, name=f"runlog-sender-{self.id}", daemon=True
            )
            _console.ignore_thread(self._sender)
            self._sender.start()
        finally:
            unblock()

        if init_config:
            self._publish_kv("config", init_config, [])
            self.config._data.update(init_config)
        if resume_from is not None:
            self.rewind(resume_from)
        self._capture = capture_console
        _hooks.track(self)
        if opts.hooks:
            _hooks.register(self)
        if capture_console:
            _console.attach(self)

    # ----- the call path -----------------------------------------------

    def log(
        self, data: Mapping[str, Any], step: Optional[int] = None, commit: bool = True
    ) -> None:
        """Logs one row of history.

        step defaults to one more than the last row's. commit=False merges
        data into the current row, which is sent with the next commit, a
        change of step, or flush(). Values: int, float (NaN and infinities
        kept), bool, str, numpy scalars; nested dicts are flattened with "/".
        A bad key or value raises TypeError or ValueError naming it, and
        nothing of the row is queued. Never waits for the network; waits
        only while the queue is full.
        """
        known = self._hkeys
        if type(data) is not dict and not isinstance(data, Mapping):
            raise TypeError(
                f"run.log takes a dict of metric name to value, not {type(data).__name__}"
            )
        for k, v in data.items():
            t = type(v)
            if k in known and (
                t is float or t is bool or (t is int and INT64_MIN <= v <= INT64_MAX)
            ):
                continue
            row = flatten(data, known)
            break
        else:
            row = dict(data)
        if step is not None:
            step = _as_step(step)
        with self._mu:
            if self._closed or self._fatal is not None:
                self._raise_closed()
            if step is None:
                s = self._pending_step if self._pending is not None else self._next_step
            else:
                s = step
                floor = (
                    self._pending_step if self._pending is not None else self._last_step
                )
                if s < floor:
                    raise ValueError(
                        f"step {s} is lower than the run's last step {floor}; steps "
                        "never go back (use run.rewind(step) to restart history "
                        "from an earlier step)"
                    )
                if self._pending is not None and s != self._pending_step:
                    self._commit_pending_locked()
            if not commit:
                if self._pending is None:
                    self._pending = row
                    self._pending_step = s
                else:
                    self._pending.update(row)
                return
            if self._pending is not None:
                merged = self._pending
                merged.update(row)
                row = merged
                self._pending = None
            self._put_locked((_HISTORY, s, row))
            self._last_step = s
            self._next_step = s + 1

    def _commit_pending_locked(self) -> None:
        row, s = self._pending, self._pending_step
        self._pending = None
        if row is not None:
            self._put_locked((_HISTORY, s, row))
            self._last_step = s
            self._next_step = s + 1

    def _put_locked(self, entry: tuple) -> None:
        q = self._q
        if len(q) >= self._qmax:
            t0 = time.perf_counter()
            self._waits += 1
            while len(q) >= self._qmax:
                if self._fatal is not None:
                    self._raise_closed()
                if self._sleeping:
                    self._wake.set()
                self._room.wait(1.0)
            self._wait_seconds += time.perf_counter() - t0
        q.append(entry)
        self._enqueued += 1
        if self._sleeping:
            self._wake.set()

    def _put(self, record: record_pb2.Record) -> None:
        with self._mu:
            if self._closed or self._fatal is not None:
                self._raise_closed()
            self._put_locked((_OTHER, record))

    def _raise_closed(self) -> None:
        if self._fatal is not None:
            raise self._fatal
        raise RunClosedError(f"run {self.id} is finished; start another with runlog.init")

    def _publish_kv(self, what: str, items: Dict[str, Any], remove: List[str]) -> None:
        pb = items_pb(items.items(), what)
        if what == "config":
            rec = record_pb2.Record(config=record_pb2.ConfigUpdate(set=pb, remove=remove))
        else:
            rec = record_pb2.Record(
                summary=record_pb2.SummaryUpdate(set=pb, remove=remove)
            )
        self._put(rec)

    def alert(self, title: str, text: str = "", level: str = "info") -> None:
        """Records an alert (level: info, warn or error)."""
        if level not in _ALERT_LEVEL:
            raise ValueError(f"alert level must be info, warn or error; got {level!r}")
        self._put(
            record_pb2.Record(
                alert=record_pb2.Alert(title=title, text=text, level=_ALERT_LEVEL[level])
            )
        )

    def rewind(self, step: int) -> None:
        """Restarts history at step: rows at or after it are dropped from the
        run's derived history and the next row may use any step >= step."""
        s = _as_step(step)
        with self._mu:
            self._commit_pending_locked()
            if self._closed or self._fatal is not None:
                self._raise_closed()
            self._put_locked((_OTHER, record_pb2.Record(rewind=record_pb2.Rewind(step=s))))
            self._last_step = s
            self._next_step = s

    def mark_preempting(self) -> None:
        """Says the process expects to be preempted: a SIGTERM then finishes
        the run as preempted instead of killed."""
        self._preempting = True

    def output(self, stream: str, text: str) -> None:
        """Records console text (stream "stdout" or "stderr")."""
        s = (
            record_pb2.ConsoleOutput.STREAM_STDERR
            if stream == "stderr"
            else record_pb2.ConsoleOutput.STREAM_STDOUT
        )
        self._put(record_pb2.Record(output=record_pb2.ConsoleOutput(stream=s, text=text)))

    # ----- waiting for durability ---------------------------------------

    def flush(self, timeout: Optional[float] = None) -> None:
        """Returns once every record queued before the call is durable.

        Raises TimeoutError when timeout seconds pass first,
        RecordsRejectedError when the service refused records (the others
        are durable), and the run's error when it failed for good.
        """
        with self._mu:
            if self._pending is not None and not self._closed:
                self._commit_pending_locked()
            self._wait_acked_locked(self._enqueued, timeout)

    def _wait_acked_locked(self, target: int, timeout: Optional[float]) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._sleeping:
            self._wake.set()
        while self._acked < target and self._fatal is None:
            if deadline is None:
                self._acked_cv.wait(1.0)
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"run {self.id}: {target - self._acked} record(s) not yet "
                    f"durable after {timeout:g}s"
                )
            self._acked_cv.wait(min(left, 1.0))
        if self._fatal is not None and self._acked < target:
            raise self._fatal
        if self._rejections:
            rej, self._rejections = self._rejections, []
            total, self._rejected_unreported = self._rejected_unreported, 0
            raise RecordsRejectedError(rej, total)

    def finish(
        self,
        exit_code: int = 0,
        *,
        reason: Optional[str] = None,
        message: str = "",
        timeout: Optional[float] = None,
    ) -> None:
        """Flushes, writes the exit record and stops the run's threads.

        reason defaults to "finished" for exit code 0 and "failed" otherwise
        (also: "killed", "preempted", "crashed"). A second call does nothing.
        Raises RecordsRejectedError after finishing when records were
        refused since the last flush.

        A finish interrupted by KeyboardInterrupt or SystemExit (SIGTERM
        unwinds the main thread with it) leaves the run open with its
        threads running; the next call, the exit hook's when the program
        does not make one, completes it with the exit of the first call.
        """
        if reason is None:
            reason = "finished" if exit_code == 0 else "failed"
        if reason not in _REASON:
            raise ValueError(f"reason must be one of {', '.join(_REASON)}; got {reason!r}")
        with self._mu:
            if self._finished:
                return
            if self._pid != os.getpid():
                raise RunClosedError(
                    f"run {self.id} belongs to process {self._pid}; a forked "
                    "process calls runlog.init(id=..., resume='allow') itself"
                )
        if self._capture:
            # Before closing: a partial last line still goes into the log.
            _console.detach(self)
        with self._mu:
            if self._finished:
                return
            if self._exit is None:
                self._commit_pending_locked()
                self._closed = True
                self._exit = (exit_code, reason, message, self._enqueued)
            exit_code, reason, message, target = self._exit
        err: Optional[BaseException] = None
        try:
            with self._mu:
                try:
                    self._wait_acked_locked(target, timeout)
                except RecordsRejectedError as e:
                    err = e
            self._send_finish(exit_code, reason, message, timeout)
        except Exception as e:
            err = e
        # Anything else (KeyboardInterrupt, SystemExit) propagates before the
        # run is given up: its records may not be durable yet.
        with self._mu:
            self._finished = True
        _hooks.unregister(self)
        self._shutdown()
        if err is not None:
            raise err

    def _send_finish(
        self, exit_code: int, reason: str, message: str, timeout: Optional[float]
    ) -> None:
        req = service_pb2.FinishRequest(
            run_id=self.id,
            client_id=self.client_id,
            exit=record_pb2.Exit(code=exit_code, reason=_REASON[reason], message=message),
        )
        limit = self._opts.reconnect_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            with self._mu:
                stub, number = self._stub, self._stream_number
            try:
                stub.Finish(req, timeout=self._opts.rpc_timeout)
                break
            except grpc.RpcError as e:
                if e.code() not in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                ):
                    raise _rpc_error(f"finish run {self.id}", e) from None
                if time.monotonic() > deadline:
                    raise ServiceUnavailableError(
                        f"finish run {self.id}: service unavailable for {limit:g}s: "
                        f"{e.details()}",
                        code=e.code().name,
                    ) from None
            # The service went away: let the sender reconnect (Init resumes
            # the run for this client), then try again.
            with self._mu:
                if self._broken is None and self._stream_number == number:
                    self._broken = "finish failed: service unavailable"
                self._wake.set()
                while self._stream_number == number and self._fatal is None:
                    if time.monotonic() > deadline:
                        break
                    self._acked_cv.wait(0.5)
                if self._fatal is not None:
                    raise self._fatal
        try:
            stub.Teardown(
                service_pb2.TeardownRequest(client_id=self.client_id),
                timeout=self._opts.rpc_timeout,
            )
        except grpc.RpcError as e:
            self._log.debug("teardown of %s: %s", self.client_id, e)

    def _shutdown(self) -> None:
        with self._mu:
            self._stop = True
            self._stop_event.set()
            self._wake.set()
            self._room.notify_all()
        self._sender.join()
        self._channel.close()
        self._service.reap()

    def _abandon(self) -> None:
        """Forgets the run in a forked child: its threads and channel belong
        to the parent. Runs in the child right after fork, when only the
        forking thread exists: locks another thread held at the fork would
        never be released, so they are replaced."""
        self._mu = threading.RLock()
        self._room = threading.Condition(self._mu)
        self._acked_cv = threading.Condition(self._mu)
        self._closed = True
        self._finished = True
        self._fatal = RunClosedError(
            f"run {self.id} belongs to process {self._pid}; a forked process "
            "calls runlog.init(id=..., resume='allow') itself"
        )

    def stats(self) -> Dict[str, Any]:
        """Counters: records queued, sent, acknowledged and rejected, waits
        for a full queue, reconnects, batches, current queue and window."""
        with self._mu:
            return {
                "queued": self._enqueued,
                "sent": self._sent,
                "acked": self._acked,
                "rejected": self._rejected_total,
                "queue_len": len(self._q),
                "queue_full_waits": self._waits,
                "queue_wait_seconds": self._wait_seconds,
                "reconnects": self._reconnects,
                "batches": self._batches,
                "window_records": self._window.records,
            }

    # ----- context manager ---------------------------------------------

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finish()
            return
        code, reason, message = exit_for_exception(exc_type, exc, tb)
        try:
            self.finish(code, reason=reason, message=message)
        except Exception as e:  # the user's exception matters more
            self._log.error("runlog: finishing run %s failed: %s", self.id, e)

    def __repr__(self) -> str:
        return f"<runlog.Run {self.id} project={self.project!r} name={self.name!r}>"

    # ----- sender thread -----------------------------------------------

    def _send_main(self) -> None:
        try:
            self._send_loop()
        except _Stop:
            pass
        except BaseException as e:
            self._log.error("runlog: sender of run %s stopped: %r", self.id, e)
            with self._mu:
                if self._fatal is None:
                    self._fatal = RunlogError(f"run {self.id}: sender stopped: {e!r}")
                self._acked_cv.notify_all()
                self._room.notify_all()
        finally:
            if self._stream is not None:
                self._stream.close()
                self._stream = None

    def _send_loop(self) -> None:
        opts = self._opts
        q = self._q
        window = self._window
        while True:
            with self._mu:
                window.drop_acked(self._acked)
                if self._stop or self._fatal is not None:
                    return
                broken = self._broken
                retry = self._retry_at is not None and time.monotonic() >= self._retry_at
            if broken is not None or self._stream is None:
                self._reconnect(broken)
                continue
            if retry:
                with self._mu:
                    self._retry_at = None
                self._resend()
                continue
            room = min(
                opts.batch_records,
                opts.max_in_flight * opts.batch_records - window.records,
            )
            if q and len(window.batches) < opts.max_in_flight and room > 0:
                self._send_batch(room)
                continue
            with self._mu:
                if (q and len(window.batches) < opts.max_in_flight) or self._stop:
                    continue
                if self._broken is not None or self._fatal is not None:
                    continue
                self._sleeping = True
                wait = None
                if self._retry_at is not None:
                    wait = max(0.0, self._retry_at - time.monotonic())
            self._wake.wait(wait if wait is not None else 5.0)
            self._wake.clear()
            self._sleeping = False

    def _send_batch(self, room: int) -> None:
        q = self._q
        enc = self._encoder.record
        cid = self.client_id
        recs: List[bytes] = []
        nbytes = 0
        first = self._cseq + 1
        limit = self._opts.batch_bytes
        while q and len(recs) < room and nbytes < limit:
            e = q.popleft()
            self._cseq += 1
            if e[0] == _HISTORY:
                b = enc(self._cseq, e[1], e[2])
            else:
                r = e[1]
                r.client_id = cid
                r.client_seq = self._cseq
                b = r.SerializeToString()
            recs.append(b)
            nbytes += len(b)
            if len(recs) & 255 == 0:
                # Let the logging thread run: without this, encoding a large
                # batch holds the GIL for milliseconds.
                time.sleep(0)
        with self._mu:
            if self._waits:
                self._room.notify_all()
        self._window.batches.append([first, self._cseq, recs])
        self._window.records += len(recs)
        self._publish(recs)

    def _publish(self, recs: List[bytes]) -> None:
        self._batches += 1
        req = service_pb2.PublishRequest(
            run_id=self.id, client_id=self.client_id, batch=self._batches, records=recs
        )
        self._sent += len(recs)
        assert self._stream is not None
        self._stream.requests.put(req)

    def _resend(self) -> None:
        """Sends every un-acked record again; the service drops the ones it
        already holds by (client_id, client_seq)."""
        for recs in list(self._window.pending()):
            self._publish(recs)

    def _read_acks(self, stream: _Stream) -> None:
        err: Optional[str] = None
        try:
            for resp in stream.call:
                self._on_response(resp)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                err = f"{e.code().name}: {e.details()}"
            else:
                err = "stream cancelled"
        except Exception as e:  # a bug here must not hang flush()
            err = repr(e)
        with self._mu:
            if self._stream_number == stream.number and not self._stop:
                self._broken = err or "the service closed the publish stream"
            self._wake.set()

    def _on_response(self, resp: service_pb2.PublishResponse) -> None:
        with self._mu:
            for rej in resp.rejections:
                self._rejected_total += 1
                self._rejected_unreported += 1
                if len(self._rejections) >= _MAX_REJECTIONS:
                    continue  # counted; a run that rejects everything stays bounded
                r = Rejection(rej.client_seq, _code_name(rej.error.code), rej.error.message)
                self._rejections.append(r)
                self._log.warning(
                    "runlog: run %s: record %d rejected: %s: %s%s",
                    self.id,
                    r.client_seq,
                    r.code,
                    r.message,
                    "; further rejections until the next flush are only counted"
                    if len(self._rejections) == _MAX_REJECTIONS
                    else "",
                )
            if resp.error.code:
                code = resp.error.code
                if code in _RETRYABLE:
                    if self._retry_at is None:
                        self._log.warning(
                            "runlog: run %s: batch %d not written (%s: %s); retrying in %.2fs",
                            self.id,
                            resp.batch,
                            _code_name(code),
                            resp.error.message,
                            self._retry_delay,
                        )
                        self._retry_at = time.monotonic() + self._retry_delay
                        self._retry_delay = min(self._retry_delay * 2, 5.0)
                elif self._fatal is None:
                    self._fatal = RunClosedError(
                        f"run {self.id}: {_code_name(code)}: {resp.error.message}",
                        code=_code_name(code),
                    )
                    self._log.error("runlog: %s", self._fatal)
                    self._room.notify_all()
            if resp.acked_client_seq > self._acked:
                self._acked = resp.acked_client_seq
                self._retry_delay = 0.05
            self._acked_cv.notify_all()
        self._wake.set()

    def _reconnect(self, why: Optional[str]) -> None:
        """Connects again (starting a service when none runs), resumes the
        run for this client and resends what the service does not hold."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        first = why is not None
        if first:
            self._log.warning(
                "runlog: run %s: lost the service (%s); reconnecting", self.id, why
            )
            self._channel.close()
            deadline = time.monotonic() + self._opts.reconnect_timeout
            delay = 0.05
            while True:
                if self._stop:
                    raise _Stop()
                try:
                    channel, _ = self._service.connect()
                except ServiceNotFoundError as e:
                    self._fail(e)
                    raise _Stop() from None
                except (ServiceStartError, OSError, grpc.RpcError) as e:
                    last = str(e)
                else:
                    stub = service_pb2_grpc.RunlogStub(channel)
                    try:
                        resp = stub.Init(
                            service_pb2.InitRequest(
                                run_id=self.id,
                                resume=service_pb2.RESUME_MODE_MUST,
                                client_id=self.client_id,
                                client_pid=self._pid,
                                **self._stats,
                            ),
                            timeout=self._opts.rpc_timeout,
                        )
                    except grpc.RpcError as e:
                        channel.close()
                        if e.code() not in (
                            grpc.StatusCode.UNAVAILABLE,
                            grpc.StatusCode.DEADLINE_EXCEEDED,
                        ):
                            self._fail(_rpc_error(f"resume run {self.id}", e))
                            raise _Stop() from None
                        last = f"{e.code().name}: {e.details()}"
                    else:
                        break
                if time.monotonic() > deadline:
                    self._fail(
                        ServiceUnavailableError(
                            f"run {self.id}: no runlog service for "
                            f"{self._opts.reconnect_timeout:g}s (last error: {last}); "
                            f"see {self._service.log_path}"
                        )
                    )
                    raise _Stop()
                self._stop_event.wait(delay)
                delay = min(delay * 2, 1.0)
            with self._mu:
                self._channel, self._stub = channel, stub
                if resp.acked_client_seq > self._acked:
                    self._acked = resp.acked_client_seq
                self._window.drop_acked(self._acked)
                self._reconnects += 1
                self._acked_cv.notify_all()
            self._log.info(
                "runlog: run %s: reconnected; resending %d record(s)",
                self.id,
                self._window.records,
            )
        with self._mu:
            self._stream_number += 1
            self._broken = None
            self._retry_at = None
            self._stream = _Stream(self._stub, self, self._stream_number)
            self._acked_cv.notify_all()
        self._resend()

    def _fail(self, err: BaseException) -> None:
        self._log.error("runlog: %s", err)
        with self._mu:
            if self._fatal is None:
                self._fatal = err
            self._acked_cv.notify_all()
            self._room.notify_all()


class _Stop(Exception):
    """Ends the sender thread."""


def exit_for_exception(exc_type, exc, tb):
    """(exit code, reason, message) for a run ended by an exception."""
    text = "".join(traceback.format_exception(exc_type, exc, tb))
    if issubclass(exc_type, KeyboardInterrupt):
        return 130, "killed", text
    if issubclass(exc_type, SystemExit):
        code = exc.code if exc is not None else 0
        if code is None or code == 0:
            return 0, "finished", ""
        return (code if isinstance(code, int) else 1), "failed", str(code)
    return 1, "failed", text

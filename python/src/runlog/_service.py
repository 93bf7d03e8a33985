"""Finding, starting and connecting to the local runlog service.

The service for a ROOT listens on ROOT/service.sock. A client that finds no
answer there starts ``runlog service`` detached and waits for the port file the
service writes once it listens. When two processes start a service at the
same time, one wins the lock on ROOT/service.lock and the other's start exits
with an error naming the winner: the loser connects to the winner.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import subprocess
import time
from typing import Optional, Tuple

import grpc

from runlog.errors import ServiceNotFoundError, ServiceStartError

_HEALTH_CHECK = "/grpc.health.v1.Health/Check"
# HealthCheckResponse{status: SERVING}
_SERVING = b"\x08\x01"

BUILD_HINT = (
    'build it with "make build" in the runlog repository and set '
    "RUNLOG_BIN=/path/to/bin/runlog, or put runlog on PATH"
)

# Large enough for any batch the sender builds (it caps batches far lower).
_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 64 << 20),
    ("grpc.max_receive_message_length", 64 << 20),
]


def resolve_root(dir: Optional[str] = None) -> str:
    """ROOT is dir, else $RUNLOG_DIR, else ~/.runlog, made absolute."""
    root = dir or os.environ.get("RUNLOG_DIR") or os.path.join("~", ".runlog")
    return os.path.abspath(os.path.expanduser(root))


def grpc_target(address: str) -> str:
    """Turns a RUNLOG_SERVICE address into a grpc target.

    Accepted: unix:///abs/path.sock, unix:/abs/path, tcp://HOST:PORT and
    HOST:PORT.
    """
    if address.startswith("unix:"):
        path = address[len("unix:"):]
        while path.startswith("//"):
            path = path[1:]
        return "unix://" + os.path.abspath(path)
    if address.startswith("tcp://"):
        return address[len("tcp://"):]
    return address


def find_binary(binary: Optional[str] = None) -> str:
    """Returns the runlog binary: binary, else $RUNLOG_BIN, else PATH."""
    candidate = binary or os.environ.get("RUNLOG_BIN")
    if candidate:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
        raise ServiceNotFoundError(
            f"runlog binary {candidate!r} does not exist or is not executable; "
            + BUILD_HINT
        )
    found = shutil.which("runlog")
    if found:
        return found
    raise ServiceNotFoundError("no runlog binary to start the service; " + BUILD_HINT)


def health(channel: grpc.Channel, timeout: float) -> bool:
    """True when the service behind channel answers SERVING in time."""
    check = channel.unary_unary(
        _HEALTH_CHECK,
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    try:
        return check(b"", timeout=timeout) == _SERVING
    except grpc.RpcError:
        return False


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 8192))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


class Service:
    """Where the service for one ROOT is, and how to start it.

    connect() returns an open channel to a service that answered a health
    check, starting one first when needed. Safe for use from one thread at a
    time (the run's sender thread owns it).
    """

    def __init__(
        self,
        root: str,
        address: Optional[str] = None,
        binary: Optional[str] = None,
        start_timeout: float = 30.0,
        logger: Optional[logging.Logger] = None,
    ):
        self.root = root
        self.address = address if address is not None else os.environ.get("RUNLOG_SERVICE")
        self.binary = binary
        self.start_timeout = start_timeout
        self.log = logger or logging.getLogger("runlog")
        self.socket = os.path.join(root, "service.sock")
        self.log_path = os.path.join(root, "service.log")
        # Services this process started, reaped on close so none is left a
        # zombie while this process runs on.
        self._children = []

    def connect(self) -> Tuple[grpc.Channel, str]:
        """Returns (channel, target) for a healthy service."""
        if self.address:
            target = grpc_target(self.address)
            ch = grpc.insecure_channel(target, options=_CHANNEL_OPTIONS)
            if not health(ch, timeout=5.0):
                ch.close()
                raise ServiceStartError(
                    f"no runlog service answers at RUNLOG_SERVICE={self.address}"
                )
            return ch, target
        target = "unix://" + self.socket
        if os.path.exists(self.socket):
            ch = grpc.insecure_channel(target, options=_CHANNEL_OPTIONS)
            if health(ch, timeout=2.0):
                return ch, target
            ch.close()
        return self._start()

    def _start(self) -> Tuple[grpc.Channel, str]:
        binary = find_binary(self.binary)
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        port_file = os.path.join(self.root, f"service-{secrets.token_hex(6)}.port")
        args = [
            binary,
            "service",
            "--root",
            self.root,
            "--port-file",
            port_file,
            "--parent-pid",
            str(os.getpid()),
        ]
        self.log.debug("starting runlog service: %s", " ".join(args))
        with open(self.log_path, "ab") as logf:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=logf,
                start_new_session=True,
                close_fds=True,
            )
        self._children.append(proc)
        deadline = time.monotonic() + self.start_timeout
        try:
            # The port file appears complete (written and renamed) once the
            # service listens. Nothing in the standard library waits for a
            # file to appear, so poll with a short interval and a deadline.
            while time.monotonic() < deadline:
                if os.path.exists(port_file):
                    return self._connect_port_file(port_file)
                if proc.poll() is not None:
                    return self._after_lost_race(proc, deadline)
                time.sleep(0.01)
        finally:
            try:
                os.unlink(port_file)
            except OSError:
                pass
        raise ServiceStartError(
            f"the runlog service ({binary}) did not write its port file within "
            f"{self.start_timeout:g}s; see {self.log_path}:\n{_tail(self.log_path)}",
            self.log_path,
            _tail(self.log_path),
        )

    def _connect_port_file(self, port_file: str) -> Tuple[grpc.Channel, str]:
        with open(port_file, "rb") as f:
            info = json.loads(f.read())
        sock = info.get("unix") or self.socket
        target = "unix://" + sock
        ch = grpc.insecure_channel(target, options=_CHANNEL_OPTIONS)
        if not health(ch, timeout=5.0):
            ch.close()
            raise ServiceStartError(
                f"the runlog service wrote {port_file} but does not answer on "
                f"{sock}; see {self.log_path}:\n{_tail(self.log_path)}",
                self.log_path,
                _tail(self.log_path),
            )
        return ch, target

    def _after_lost_race(self, proc, deadline: float) -> Tuple[grpc.Channel, str]:
        # Our service exited before listening. The usual reason is another
        # service already holding ROOT: connect to it once it answers.
        target = "unix://" + self.socket
        ch = grpc.insecure_channel(target, options=_CHANNEL_OPTIONS)
        # The winner may be between taking the lock and writing its pid.
        grace = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            if os.path.exists(self.socket) and health(ch, timeout=1.0):
                return ch, target
            if not _lock_held_by_live_process(self.root) and time.monotonic() > grace:
                break
            time.sleep(0.02)
        ch.close()
        tail = _tail(self.log_path)
        raise ServiceStartError(
            f"the runlog service exited with status {proc.returncode} before "
            f"it listened; see {self.log_path}:\n{tail}",
            self.log_path,
            tail,
        )

    def service_pid(self) -> Optional[int]:
        """The pid in ROOT/service.lock, if any."""
        try:
            with open(os.path.join(self.root, "service.lock"), "rb") as f:
                return int(json.loads(f.read())["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def reap(self) -> None:
        """Collects services this process started that have exited."""
        self._children = [p for p in self._children if p.poll() is None]


def _lock_held_by_live_process(root: str) -> bool:
    try:
        with open(os.path.join(root, "service.lock"), "rb") as f:
            pid = int(json.loads(f.read())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

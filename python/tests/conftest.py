"""Fixtures: the runlog binary, a ROOT per test whose service is stopped
afterwards, and helpers to run client scripts and read a run's log."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from fakeservice import FakeServer  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "python" / "src"


@pytest.fixture
def fake(tmp_path):
    """A FakeServer on a unix socket in tmp_path."""
    srv = FakeServer(str(tmp_path / "fake.sock"))
    yield srv
    srv.stop()


def _find_binary():
    b = os.environ.get("RUNLOG_BIN")
    if b:
        return b
    b = REPO / "bin" / "runlog"
    return str(b) if b.exists() else None


@pytest.fixture(scope="session")
def runlog_bin():
    """The runlog binary; the test is skipped when there is none."""
    b = _find_binary()
    if b is None:
        pytest.skip("no runlog binary: set RUNLOG_BIN or run `make build` (bin/runlog)")
    for cmd in ("service", "replay"):
        p = subprocess.run([b, cmd, "--help"], capture_output=True, text=True, timeout=30)
        if "not implemented" in p.stdout + p.stderr:
            pytest.skip(f"{b} has no `runlog {cmd}` yet")
    return b


def _gone(pid):
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return True
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return True
    except (FileNotFoundError, ProcessLookupError):
        return True
    return False


def wait_gone(pid, timeout=10.0):
    """Waits for a process that may not be our child to exit. There is no
    event for that, so this polls with a deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.02)
    return False


def service_pid(root):
    try:
        with open(os.path.join(root, "service.lock")) as f:
            return int(json.load(f)["pid"])
    except (OSError, ValueError, KeyError):
        return None


def stop_service(root):
    pid = service_pid(root)
    if pid is None or _gone(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not wait_gone(pid, 15.0):
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid, 5.0)


@pytest.fixture
def root(tmp_path, runlog_bin, monkeypatch):
    """A fresh ROOT; the service started in it is stopped at the end."""
    r = tmp_path / "root"
    r.mkdir()
    monkeypatch.setenv("RUNLOG_BIN", runlog_bin)
    monkeypatch.delenv("RUNLOG_SERVICE", raising=False)
    monkeypatch.setenv("RUNLOG_DIR", str(r))
    yield str(r)
    stop_service(str(r))


def script_env(root, runlog_bin, **extra):
    env = dict(os.environ)
    env.update(
        RUNLOG_BIN=runlog_bin,
        RUNLOG_DIR=root,
        PYTHONPATH=str(SRC) + os.pathsep + env.get("PYTHONPATH", ""),
        PYTHONUNBUFFERED="1",
    )
    env.pop("RUNLOG_SERVICE", None)
    env.update(extra)
    return env


def start_script(tmp_path, root, runlog_bin, code, name="script.py", **env):
    """Starts a Python script (code is dedented) as a real process."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(code))
    return subprocess.Popen(
        [sys.executable, str(path)],
        env=script_env(root, runlog_bin, **env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_script(tmp_path, root, runlog_bin, code, timeout=90, **env):
    p = start_script(tmp_path, root, runlog_bin, code, **env)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError(f"script timed out\nstdout:\n{out}\nstderr:\n{err}")
    return p.returncode, out, err


def replay(runlog_bin, root, run_id):
    """The run's records as `runlog replay --json` prints them."""
    p = subprocess.run(
        [runlog_bin, "replay", run_id, "--root", root, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, f"runlog replay failed ({p.returncode}): {p.stderr}"
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


def values(items):
    """{key: value} from the items of a replay --json payload."""
    out = {}
    for it in items:
        if "double" in it:
            v = it["double"]
            out[it["key"]] = float(v) if isinstance(v, str) else float(v)
        elif "int" in it:
            out[it["key"]] = int(it["int"])
        elif "bool" in it:
            out[it["key"]] = it["bool"]
        elif "string" in it:
            out[it["key"]] = it["string"]
        elif "json" in it:
            out[it["key"]] = it["json"]
        else:
            out[it["key"]] = None
    return out


def of_kind(records, kind):
    return [r for r in records if r["kind"] == kind]

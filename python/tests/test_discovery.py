"""Finding ROOT, the service address and the binary: no service needed."""

import os

import pytest

from runlog._service import find_binary, grpc_target, resolve_root
from runlog.errors import ServiceNotFoundError


def test_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNLOG_DIR", str(tmp_path / "env"))
    assert resolve_root(str(tmp_path / "arg")) == str(tmp_path / "arg")
    assert resolve_root() == str(tmp_path / "env")
    monkeypatch.delenv("RUNLOG_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_root() == str(tmp_path / "home" / ".runlog")
    monkeypatch.chdir(tmp_path)
    assert resolve_root("rel") == str(tmp_path / "rel")


@pytest.mark.parametrize("address, target", [
    ("unix:///tmp/x/service.sock", "unix:///tmp/x/service.sock"),
    ("unix:/tmp/x/service.sock", "unix:///tmp/x/service.sock"),
    ("tcp://127.0.0.1:7070", "127.0.0.1:7070"),
    ("127.0.0.1:7070", "127.0.0.1:7070"),
])
def test_service_addresses(address, target):
    assert grpc_target(address) == target


def test_find_binary(tmp_path, monkeypatch):
    exe = tmp_path / "bin" / "runlog"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setenv("RUNLOG_BIN", str(exe))
    assert find_binary() == str(exe)
    monkeypatch.setenv("RUNLOG_BIN", str(tmp_path / "missing"))
    with pytest.raises(ServiceNotFoundError, match="does not exist"):
        find_binary()
    monkeypatch.delenv("RUNLOG_BIN")
    monkeypatch.setenv("PATH", str(exe.parent) + os.pathsep + "/nonexistent")
    assert find_binary() == str(exe)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ServiceNotFoundError, match='"make build"'):
        find_binary()

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from fakeservice import FakeServer  # noqa: E402


@pytest.fixture
def fake(tmp_path):
    """A FakeServer on a unix socket in tmp_path."""
    srv = FakeServer(str(tmp_path / "fake.sock"))
    yield srv
    srv.stop()

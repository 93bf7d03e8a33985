"""System stats per run against the real `runlog service`: stats=False
turns the samples off for a run, stats_interval samples it that often."""

import time

import runlog
from conftest import of_kind, replay


def test_stats_off_and_interval(root, runlog_bin):
    quiet = runlog.init(id="stats-off", stats=False, capture_console=False)
    busy = runlog.init(id="stats-fast", stats_interval=0.2, capture_console=False)
    quiet.log({"x": 1})
    busy.log({"x": 1})
    # Both runs stay open until the sampled one has a few samples, so the
    # quiet run had every chance to get one.
    deadline = time.monotonic() + 30
    while len(of_kind(replay(runlog_bin, root, "stats-fast"), "stats")) < 3:
        assert time.monotonic() < deadline, "no system stats in 30s at a 0.2s interval"
        time.sleep(0.1)
    quiet.finish()
    busy.finish()
    assert of_kind(replay(runlog_bin, root, "stats-off"), "stats") == []
    assert len(of_kind(replay(runlog_bin, root, "stats-fast"), "stats")) >= 3

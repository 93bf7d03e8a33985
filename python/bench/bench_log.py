"""Measures run.log(): calls per second, per-call cost, time to durability.

    RUNLOG_BIN=bin/runlog python python/bench/bench_log.py [--calls 500000] [--keys 10]

One process logs --calls rows of --keys float scalars as fast as it can
(the sender thread encodes and publishes in the background, sharing the
GIL), then finish() waits until every row is durable. Reported:

  calls/s          rows logged per second of the logging loop
  p50/p99/max      cost of one log() call (perf_counter_ns around each
                   call; the timer itself adds about 0.1 us)
  finish           seconds from the last log() to finish() returning
  durable/s        rows per second from the first log() to finish()
  verified         runlog replay --json holds every row once, steps 0..N-1

The service runs in a fresh temporary ROOT (or --root) and is stopped at the
end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import runlog


def stop_service(root: str) -> None:
    try:
        with open(os.path.join(root, "service.lock")) as f:
            pid = int(json.load(f)["pid"])
    except (OSError, ValueError, KeyError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.05)


def verify(binary: str, root: str, run_id: str, n: int) -> bool:
    """Every row in the log once, with steps 0..n-1 in order."""
    p = subprocess.Popen(
        [binary, "replay", run_id, "--root", root, "--json", "--kind", "history"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert p.stdout is not None
    want = 0
    ok = True
    for line in p.stdout:
        r = json.loads(line)
        if r.get("kind") != "history":
            continue
        if r["history"].get("step", 0) != want:
            ok = False
        want += 1
    ok = p.wait() == 0 and ok
    return ok and want == n


def main() -> int:
    ap = argparse.ArgumentParser(description="measure run.log()")
    ap.add_argument("--calls", type=int, default=500_000)
    ap.add_argument("--keys", type=int, default=10)
    ap.add_argument("--root", help="service ROOT (default: a fresh temporary directory)")
    ap.add_argument("--no-verify", action="store_true")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()

    binary = os.environ.get("RUNLOG_BIN") or "runlog"
    root = args.root or tempfile.mkdtemp(prefix="runlog-bench-")
    n = args.calls
    keys = [f"train/metric_{i}" for i in range(args.keys)]
    try:
        run = runlog.init(project="bench", dir=root, capture_console=False)
        lat = [0] * n
        now = time.perf_counter_ns
        log = run.log
        t0 = time.perf_counter()
        for i in range(n):
            x = i * 1e-3
            row = {k: x + j for j, k in enumerate(keys)}
            a = now()
            log(row)
            lat[i] = now() - a
        t1 = time.perf_counter()
        run.finish()
        t2 = time.perf_counter()
        stats = run.stats()
        ok = True if args.no_verify else verify(binary, root, run.id, n)
    finally:
        stop_service(root)
    lat.sort()
    result = {
        "calls": n,
        "keys": args.keys,
        "calls_per_sec": round(n / (t1 - t0)),
        "call_p50_us": round(lat[n // 2] / 1000, 2),
        "call_p99_us": round(lat[int(n * 0.99)] / 1000, 2),
        "call_max_us": round(lat[-1] / 1000, 1),
        "finish_sec": round(t2 - t1, 3),
        "durable_per_sec": round(n / (t2 - t0)),
        "queue_full_waits": stats["queue_full_waits"],
        "queue_wait_sec": round(stats["queue_wait_seconds"], 3),
        "batches": stats["batches"],
        "verified": ok if not args.no_verify else None,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{n} log() calls with {args.keys} scalars: {result['calls_per_sec']} calls/s, "
            f"p50 {result['call_p50_us']} us, p99 {result['call_p99_us']} us, "
            f"max {result['call_max_us']} us"
        )
        print(
            f"finish: {result['finish_sec']} s; durable: {result['durable_per_sec']} rows/s; "
            f"{result['batches']} batches; queue full {result['queue_full_waits']} times "
            f"({result['queue_wait_sec']} s)"
        )
        if not args.no_verify:
            print("verified: every row in the log once" if ok else "VERIFY FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Measures the wandb front door and import against wandb's own core.

    RUNLOG_BIN=bin/runlog .venv/bin/python python/bench/bench_wandb.py [--calls 100000]
        [--cpu-profile FILE]

One unchanged wandb script (init offline, --calls log() calls of three
scalars, finish) runs twice in this one invocation: with wandb's own
wandb-core, then through a fresh `runlog service` (WANDB_SERVICE from
`runlog wandb-env`). Reported:

  wall             seconds the script took, each way
  service cpu      user+system CPU seconds of the runlog service process
                   while the script ran (from /proc), and per log() call
  import           `runlog import` of the .wandb file wandb-core wrote:
                   wandb records read per second (best of --import-runs)

--cpu-profile writes the service's CPU profile (go tool pprof FILE).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SCRIPT = """
import os, wandb
n = int(os.environ["N"])
run = wandb.init(project="bench", config={"n": n})
for i in range(n):
    run.log({"loss": 1.0 / (i + 1), "acc": i * 1e-6, "i": i})
wandb.finish()
"""


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    # utime and stime are fields 14 and 15 of the whole line.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_script(py: str, workdir: str, n: int, extra: dict[str, str]) -> float:
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DIR=workdir,
               WANDB_DISABLE_GIT="true", N=str(n), **extra)
    os.makedirs(workdir, exist_ok=True)
    start = time.perf_counter()
    subprocess.run([py, "-c", SCRIPT], env=env, cwd=workdir, check=True)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--import-runs", type=int, default=3)
    ap.add_argument("--cpu-profile", default="")
    args = ap.parse_args()
    binary = os.path.abspath(os.environ.get("RUNLOG_BIN", "bin/runlog"))
    py = sys.executable
    tmp = tempfile.mkdtemp(prefix="bench-wandb-")
    try:
        own = run_script(py, os.path.join(tmp, "own"), args.calls, {})

        root = os.path.join(tmp, "root")
        cmd = [binary, "service", "--root", root, "--offline"]
        if args.cpu_profile:
            cmd += ["--cpu-profile", os.path.abspath(args.cpu_profile)]
        svc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
        env_line = ""
        for _ in range(1000):
            r = subprocess.run([binary, "wandb-env", "--root", root, "--no-start"],
                               capture_output=True, text=True)
            if r.returncode == 0:
                env_line = r.stdout.strip()
                break
            time.sleep(0.02)  # the service's startup has no event to await
        if not env_line:
            raise SystemExit("service did not come up")
        key, _, value = env_line.partition("=")
        cpu0 = cpu_seconds(svc.pid)
        via = run_script(py, os.path.join(tmp, "via"), args.calls, {key: value})
        cpu = cpu_seconds(svc.pid) - cpu0
        svc.send_signal(signal.SIGTERM)
        svc.wait()

        files = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(tmp, "own"))
                 for f in fs if f.endswith(".wandb")]
        best = 0.0
        size = os.path.getsize(files[0])
        for i in range(args.import_runs):
            iroot = os.path.join(tmp, f"import{i}")
            out = subprocess.run([binary, "import", files[0], "--root", iroot],
                                 capture_output=True, text=True, check=True).stdout
            m = re.search(r"\(([0-9]+) records/s\)", out)
            best = max(best, float(m.group(1)))
            # The import started a service in iroot; stop it.
            lock = os.path.join(iroot, "service.lock")
            if os.path.exists(lock):
                pid = json.load(open(lock))["pid"]
                os.kill(pid, signal.SIGTERM)
                while os.path.exists(f"/proc/{pid}"):
                    time.sleep(0.01)  # another process's exit: no event to await

        print(f"log() calls      {args.calls}")
        print(f"wall wandb-core  {own:.2f} s")
        print(f"wall runlog      {via:.2f} s  ({via / own:.2f}x)")
        print(f"service cpu      {cpu:.2f} s  ({cpu / args.calls * 1e6:.1f} us per log() call)")
        print(f"import           {best:.0f} records/s  ({size / 1e6:.1f} MB .wandb file, best of {args.import_runs})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

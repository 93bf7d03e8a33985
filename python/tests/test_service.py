"""The client against the real `runlog service` process: durability across
client and service crashes, several processes on one run, the lifecycle
hooks. Logs are read back with `runlog replay --json`."""

import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict

import pytest

import runlog
from conftest import (
    of_kind,
    replay,
    run_script,
    service_pid,
    start_script,
    values,
    wait_gone,
)


def test_flushed_records_survive_os_exit(tmp_path, root, runlog_bin):
    code, out, err = run_script(tmp_path, root, runlog_bin, """
        import os, runlog
        run = runlog.init(project="crash", config={"lr": 0.1})
        for i in range(5000):
            run.log({"i": i, "x": i * 0.5, "nan": float("nan")})
        run.flush()
        print(run.id, flush=True)
        # Logged after the flush: may or may not be durable, never duplicated.
        for i in range(5000, 5100):
            run.log({"i": i})
        os._exit(1)
    """)
    assert code == 1, err
    run_id = out.split()[0]
    recs = replay(runlog_bin, root, run_id)
    rows = [values(r["history"]["items"]) for r in of_kind(recs, "history")]
    seen = Counter(r["i"] for r in rows)
    assert all(seen[i] == 1 for i in range(5000)), "a flushed row is missing or doubled"
    assert max(seen.values()) == 1
    assert all(math.isnan(r["nan"]) for r in rows if r["i"] < 5000)
    steps = [r["history"]["step"] for r in of_kind(recs, "history")]
    assert steps == list(range(len(steps)))
    assert of_kind(recs, "config")[0]["config"]["set"][0]["key"] == "lr"
    assert not of_kind(recs, "exit")


def test_resume_continues_steps(root, runlog_bin):
    first = runlog.init(id="resumed-1", project="resume", capture_console=False)
    for i in range(5):
        first.log({"i": i})
    first.flush()
    with pytest.raises(runlog.RunlogError, match="ALREADY_EXISTS") as ei:
        runlog.init(id="resumed-1", capture_console=False)
    assert ei.value.code == "ALREADY_EXISTS"
    second = runlog.init(id="resumed-1", resume="allow", capture_console=False)
    assert second.resumed and second.client_id != first.client_id
    second.log({"i": 5})
    with pytest.raises(ValueError, match="lower than the run's last step 5"):
        second.log({"i": -1}, step=3)
    first.finish()
    second.finish()
    recs = replay(runlog_bin, root, "resumed-1")
    assert [r["history"]["step"] for r in of_kind(recs, "history")] == list(range(6))
    assert recs[-1]["kind"] == "exit" and recs[-1]["exit"]["reason"] == "finished"
    with pytest.raises(runlog.RunlogError, match="FAILED_PRECONDITION"):
        runlog.init(id="resumed-1", resume="must", capture_console=False)


def test_service_sigkill_while_logging(tmp_path, root, runlog_bin):
    n = 60000
    p = start_script(tmp_path, root, runlog_bin, f"""
        import sys, runlog
        run = runlog.init(project="kill", capture_console=False)
        print(run.id, flush=True)
        for i in range({n}):
            run.log({{"i": i, "loss": 1.0 / (i + 1)}})
            if i == 2000:
                print("logging", flush=True)
                run.flush()
            if i == 4000:
                # Wait until the test has killed the service.
                sys.stdin.readline()
        run.finish()
        print("reconnects", run.stats()["reconnects"], flush=True)
    """)
    try:
        run_id = p.stdout.readline().split()[0]
        assert p.stdout.readline().strip() == "logging"
        pid = service_pid(root)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert wait_gone(pid)
        p.stdin.write("go\n")
        p.stdin.flush()
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    assert "reconnects 1" in out or "reconnects 2" in out, out + err
    assert service_pid(root) != pid
    recs = replay(runlog_bin, root, run_id)
    hist = of_kind(recs, "history")
    got = [values(r["history"]["items"])["i"] for r in hist]
    assert got == list(range(n)), "records lost, doubled or reordered"
    assert [r["client_seq"] for r in hist] == list(range(1, n + 1))
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    assert recs[-1]["kind"] == "exit" and recs[-1]["exit"]["reason"] == "finished"


def test_four_processes_one_run(tmp_path, root, runlog_bin):
    run_id = "shared-run-1"
    k = 300
    procs = [
        start_script(tmp_path, root, runlog_bin, f"""
            import sys, runlog
            rank = {rank}
            run = runlog.init(id="{run_id}", resume="allow", project="dist")
            # A barrier, as distributed ranks have: all attach before any
            # finishes (the run closes when its last client finishes).
            sys.__stdout__.write("ready\\n")
            sys.__stdout__.flush()
            sys.stdin.readline()
            for i in range({k}):
                run.summary[f"rank{{rank}}/i"] = i
                print(f"rank {{rank}} line {{i}}")
            run.alert(f"rank {{rank}} done")
            run.finish()
            print("client", run.client_id)
        """, name=f"rank{rank}.py")
        for rank in range(4)
    ]
    for p in procs:
        line = p.stdout.readline()
        assert line == "ready\n", line + p.stderr.read()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    clients = set()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        clients.add(out.strip().splitlines()[-1].split()[1])
    assert len(clients) == 4
    recs = replay(runlog_bin, root, run_id)
    by_client = defaultdict(list)
    for r in recs:
        if r["kind"] in ("summary", "output", "alert"):
            by_client[r["client_id"]].append(r)
    assert set(by_client) == clients
    for cid, rs in by_client.items():
        assert Counter(r["kind"] for r in rs) == {"summary": k, "output": k, "alert": 1}
        assert [r["client_seq"] for r in rs] == list(range(1, len(rs) + 1))
        rank = rs[0]["summary"]["set"][0]["key"].split("/")[0]
        texts = [r["output"]["text"] for r in rs if r["kind"] == "output"]
        assert texts == [f"{rank.replace('rank', 'rank ')} line {i}\n" for i in range(k)]
    exits = of_kind(recs, "exit")
    assert len(exits) == 1 and recs[-1]["kind"] == "exit"


def test_bad_values_keep_the_run_usable(root, runlog_bin):
    run = runlog.init(project="bad", capture_console=False)
    run.log({"loss": 1.0}, step=3)
    with pytest.raises(TypeError, match="'weights'"):
        run.log({"loss": 2.0, "weights": [1.0, 2.0]})
    with pytest.raises(TypeError, match="'opt/fn'"):
        run.log({"opt": {"fn": print}})
    with pytest.raises(ValueError, match="'huge'"):
        run.log({"huge": 1 << 70})
    with pytest.raises(ValueError, match="empty"):
        run.summary[""] = 1
    with pytest.raises(ValueError, match="lower than"):
        run.log({"loss": 3.0}, step=2)
    run.log({"loss": 4.0})
    run.finish()
    recs = replay(runlog_bin, root, run.id)
    rows = [(r["history"]["step"], values(r["history"]["items"])) for r in of_kind(recs, "history")]
    assert rows == [(3, {"loss": 1.0}), (4, {"loss": 4.0})]


def test_context_manager_records_failure(root, runlog_bin):
    with pytest.raises(RuntimeError, match="diverged"):
        with runlog.init(project="ctx", capture_console=False) as run:
            run.log({"loss": float("inf")})
            raise RuntimeError("loss diverged")
    recs = replay(runlog_bin, root, run.id)
    ex = recs[-1]
    assert ex["kind"] == "exit"
    assert ex["exit"]["reason"] == "failed" and ex["exit"]["code"] == 1
    assert "RuntimeError: loss diverged" in ex["exit"]["message"]
    assert "Traceback" in ex["exit"]["message"]
    assert values(of_kind(recs, "history")[0]["history"]["items"])["loss"] == math.inf

    with runlog.init(project="ctx", capture_console=False) as ok:
        ok.log({"loss": 0.5})
    assert replay(runlog_bin, root, ok.id)[-1]["exit"]["reason"] == "finished"


def test_uncaught_exception_fails_the_run(tmp_path, root, runlog_bin):
    code, out, err = run_script(tmp_path, root, runlog_bin, """
        import runlog
        run = runlog.init(project="boom")
        print(run.id, flush=True)
        run.log({"loss": 1.0})
        def train():
            raise ValueError("bad batch 17")
        train()
    """)
    assert code == 1
    assert "ValueError: bad batch 17" in err  # the traceback still reaches stderr
    run_id = out.split()[0]
    recs = replay(runlog_bin, root, run_id)
    ex = recs[-1]
    assert ex["kind"] == "exit" and ex["exit"]["reason"] == "failed"
    assert "in train" in ex["exit"]["message"]
    assert "ValueError: bad batch 17" in ex["exit"]["message"]
    captured = "".join(r["output"]["text"] for r in of_kind(recs, "output")
                       if r["output"].get("stream") == "stderr")
    assert "ValueError: bad batch 17" in captured


def test_atexit_finishes_a_forgotten_run(tmp_path, root, runlog_bin):
    code, out, err = run_script(tmp_path, root, runlog_bin, """
        import runlog
        run = runlog.init(project="forgot")
        print(run.id)
        for i in range(100):
            runlog.log({"i": i})
    """)
    assert code == 0, err
    run_id = out.split()[0]
    recs = replay(runlog_bin, root, run_id)
    assert len(of_kind(recs, "history")) == 100
    assert recs[-1]["kind"] == "exit"
    assert recs[-1]["exit"]["reason"] == "finished" and recs[-1]["exit"].get("code", 0) == 0


@pytest.mark.parametrize("preemptible, reason", [("", "killed"), ("1", "preempted")])
def test_sigterm_finishes_the_run(tmp_path, root, runlog_bin, preemptible, reason):
    p = start_script(tmp_path, root, runlog_bin, """
        import sys, runlog
        run = runlog.init(project="term")
        run.log({"loss": 1.0})
        print(run.id, flush=True)
        sys.stdin.readline()
    """, RUNLOG_PREEMPTIBLE=preemptible)
    try:
        run_id = p.stdout.readline().split()[0]
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == -signal.SIGTERM
    recs = replay(runlog_bin, root, run_id)
    assert recs[-1]["kind"] == "exit"
    assert recs[-1]["exit"]["reason"] == reason
    assert recs[-1]["exit"]["code"] == 128 + signal.SIGTERM


def test_sigterm_while_logging_finishes_the_run(tmp_path, root, runlog_bin):
    # SIGTERM lands while the main thread is inside the client (logging and
    # printing in a tight loop): the run must still finish, not hang.
    for _ in range(5):
        p = start_script(tmp_path, root, runlog_bin, """
            import runlog
            run = runlog.init(project="term")
            print(run.id, flush=True)
            step = 0
            while True:
                run.log({"loss": 1.0 / (step + 1)}, step=step)
                print("step", step)
                step += 1
        """)
        try:
            run_id = p.stdout.readline().split()[0]
            p.stdout.readline()
            p.send_signal(signal.SIGTERM)
            p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert p.returncode == -signal.SIGTERM
        recs = replay(runlog_bin, root, run_id)
        assert recs[-1]["kind"] == "exit"
        assert recs[-1]["exit"]["reason"] == "killed"
        steps = [r["history"]["step"] for r in of_kind(recs, "history")]
        assert steps == list(range(len(steps)))


def test_sigterm_during_finish_completes_it(tmp_path, root, runlog_bin):
    # finish() is waiting for acks (the service is stopped) when SIGTERM
    # unwinds the main thread: the exit hook must complete that finish, with
    # every record and the exit finish() was given, not abandon the run.
    p = start_script(tmp_path, root, runlog_bin, """
        import sys, runlog
        run = runlog.init(project="term")
        print(run.id, flush=True)
        sys.stdin.readline()
        for i in range(1000):
            run.log({"i": i})
        print("finishing", flush=True)
        run.finish()
        print("finish returned", flush=True)
    """)
    pid = None
    try:
        run_id = p.stdout.readline().split()[0]
        pid = service_pid(root)
        os.kill(pid, signal.SIGSTOP)
        p.stdin.write("\n")
        p.stdin.flush()
        assert p.stdout.readline().strip() == "finishing"
        p.send_signal(signal.SIGTERM)
        # The client starts another service and resends what was not acked.
        os.kill(pid, signal.SIGKILL)
        out, err = p.communicate(timeout=90)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert wait_gone(pid)
    assert p.returncode == -signal.SIGTERM, err
    assert "finish returned" not in out
    recs = replay(runlog_bin, root, run_id)
    assert [values(r["history"]["items"])["i"] for r in of_kind(recs, "history")] == list(range(1000))
    # finish()'s own exit when the signal found it waiting (the usual
    # case), the hook's when it came before finish() took the run.
    assert recs[-1]["kind"] == "exit"
    assert (recs[-1]["exit"]["reason"], recs[-1]["exit"].get("code", 0)) in (
        ("finished", 0), ("killed", 128 + signal.SIGTERM))


def test_sigterm_reaches_the_programs_handler_every_time(tmp_path, root, runlog_bin):
    p = start_script(tmp_path, root, runlog_bin, """
        import signal, sys, runlog
        count = 0
        def on_term(signum, frame):
            global count
            count += 1
            print("term", count, flush=True)
            if count == 2:
                sys.exit(0)
        signal.signal(signal.SIGTERM, on_term)
        run = runlog.init(project="term", capture_console=False)
        print(run.id, flush=True)
        while True:
            sys.stdin.readline()
    """)
    try:
        run_id = p.stdout.readline().split()[0]
        p.send_signal(signal.SIGTERM)
        assert p.stdout.readline().strip() == "term 1"
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert "term 2" in out, err
    assert p.returncode == 0, err
    recs = replay(runlog_bin, root, run_id)
    assert recs[-1]["kind"] == "exit"
    assert recs[-1]["exit"]["reason"] == "killed"
    assert recs[-1]["exit"]["code"] == 128 + signal.SIGTERM


def _blocked(status_path):
    with open(status_path) as f:
        for line in f:
            if line.startswith("SigBlk:"):
                return int(line.split()[1], 16)
    raise AssertionError(f"no SigBlk in {status_path}")


def test_client_threads_leave_sigterm_to_the_main_thread(tmp_path, root, runlog_bin):
    # Python runs signal handlers in the main thread only: a SIGTERM the
    # kernel hands to a client thread while the main thread waits in a
    # system call would wait with it. Every thread the client starts (its
    # own and gRPC's) must block SIGINT and SIGTERM; the main thread must
    # not, nor the service the client started.
    code, out, err = run_script(tmp_path, root, runlog_bin, """
        import os, runlog
        before = set(os.listdir("/proc/self/task"))
        run = runlog.init(project="signals")
        run.log({"x": 1.0})
        run.flush()
        new = sorted(set(os.listdir("/proc/self/task")) - before)
        def blocked(t):
            with open(f"/proc/self/task/{t}/status") as f:
                return [l for l in f if l.startswith("SigBlk:")][0].split()[1]
        print(" ".join(new))
        for t in new:
            print(t, blocked(t))
        print("main", blocked(os.getpid()))
        run.finish()
    """)
    assert code == 0, err
    lines = out.splitlines()
    threads = lines[0].split()
    assert len(threads) >= 2, out  # at least the sender and the ack reader
    both = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))
    masks = dict(line.split() for line in lines[1:] if len(line.split()) == 2)
    for t in threads:
        assert int(masks[t], 16) & both == both, f"thread {t} does not block SIGINT/SIGTERM:\n{out}"
    assert int(masks["main"], 16) & both == 0, out
    pid = service_pid(root)
    for t in os.listdir(f"/proc/{pid}/task"):
        assert _blocked(f"/proc/{pid}/task/{t}/status") & (1 << (signal.SIGTERM - 1)) == 0


def test_sys_exit_code_reaches_the_exit_record(tmp_path, root, runlog_bin):
    code, out, err = run_script(tmp_path, root, runlog_bin, """
        import sys, threading, runlog
        run = runlog.init(project="exit", capture_console=False)
        print(run.id, flush=True)
        # sys.exit in another thread ends only that thread.
        t = threading.Thread(target=sys.exit, args=(5,))
        t.start()
        t.join()
        run.log({"loss": 0.5})
        sys.exit(3)
    """)
    assert code == 3, err
    recs = replay(runlog_bin, root, out.split()[0])
    assert len(of_kind(recs, "history")) == 1
    assert recs[-1]["kind"] == "exit"
    assert recs[-1]["exit"]["reason"] == "failed"
    assert recs[-1]["exit"]["code"] == 3


def test_console_capture(tmp_path, root, runlog_bin):
    code, out, err = run_script(tmp_path, root, runlog_bin, """
        import sys, runlog
        with runlog.init(project="console") as run:
            print("hello", "world")
            print("two\\nlines")
            sys.stderr.write("partial ")
            sys.stderr.write("warning\\n")
            sys.stdout.write("no newline at the end")
        print(run.id)
        with runlog.init(project="console", capture_console=False) as quiet:
            print("not captured")
        print(quiet.id)
    """)
    assert code == 0, err
    assert "hello world" in out and "not captured" in out
    lines = out.strip().splitlines()
    recs = replay(runlog_bin, root, lines[-3].replace("no newline at the end", ""))
    got = [(r["output"]["stream"], r["output"]["text"]) for r in of_kind(recs, "output")]
    assert got == [
        ("stdout", "hello world\n"),
        ("stdout", "two\n"),
        ("stdout", "lines\n"),
        ("stderr", "partial warning\n"),
        ("stdout", "no newline at the end"),
    ]
    assert not of_kind(replay(runlog_bin, root, lines[-1]), "output")


def test_missing_binary_says_how_to_build(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNLOG_BIN", str(tmp_path / "nope" / "runlog"))
    monkeypatch.delenv("RUNLOG_SERVICE", raising=False)
    with pytest.raises(runlog.ServiceNotFoundError, match='make build.*RUNLOG_BIN'):
        runlog.init(dir=str(tmp_path / "root"), capture_console=False)
    monkeypatch.delenv("RUNLOG_BIN")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(runlog.ServiceNotFoundError, match="put runlog on PATH"):
        runlog.init(dir=str(tmp_path / "root"), capture_console=False)


def test_service_that_fails_to_start_is_reported(tmp_path, monkeypatch):
    fake_bin = tmp_path / "runlog"
    fake_bin.write_text("#!/bin/sh\necho 'cannot open root: disk on fire' >&2\nexit 1\n")
    fake_bin.chmod(0o755)
    monkeypatch.setenv("RUNLOG_BIN", str(fake_bin))
    monkeypatch.delenv("RUNLOG_SERVICE", raising=False)
    root = tmp_path / "root"
    with pytest.raises(runlog.ServiceStartError, match="disk on fire") as ei:
        runlog.init(dir=str(root), capture_console=False,
                    options=runlog.Options(start_timeout=10))
    assert ei.value.log_path == str(root / "service.log")
    assert "service.log" in str(ei.value)

"""Client behaviour against the in-process fake service: batching, commit
semantics, rejections and batch errors the real service rarely produces."""

import math
import signal

import grpc
import pytest

import runlog
from runlog.v1 import record_pb2


def opts(fake, **kw):
    return runlog.Options(address=fake.address, hooks=False, **kw)


def history(fake, run_id):
    return [r.history for r in fake.service.runs[run_id].records
            if r.WhichOneof("payload") == "history"]


def kinds(fake, run_id):
    return [r.WhichOneof("payload") for r in fake.service.runs[run_id].records]


def values(row):
    return {it.key: getattr(it.value, it.value.WhichOneof("kind")) for it in row.items}


def test_log_flush_finish(fake, tmp_path):
    run = runlog.init(project="p", config={"lr": 0.1}, dir=str(tmp_path),
                      capture_console=False, options=opts(fake))
    for i in range(1000):
        run.log({"loss": 1.0 / (i + 1), "i": i, "ok": i % 2 == 0})
    run.log({"nan": float("nan"), "s": "text"})
    run.flush()
    rows = history(fake, run.id)
    assert len(rows) == 1001
    assert [r.step for r in rows] == list(range(1001))
    assert values(rows[3]) == {"loss": 0.25, "i": 3, "ok": False}
    assert math.isnan(values(rows[1000])["nan"])
    run.summary["best"] = 0.5
    run.finish()
    k = kinds(fake, run.id)
    assert k[0] == "run" and k[1] == "config" and k[-2] == "summary" and k[-1] == "exit"
    recs = fake.service.runs[run.id].records
    assert [r.client_seq for r in recs[1:-1]] == list(range(1, len(recs) - 1))
    assert recs[-1].exit.reason == record_pb2.EXIT_REASON_FINISHED
    assert fake.service.teardowns == [run.client_id]
    st = run.stats()
    assert st["acked"] == st["queued"] == 1003


def test_commit_false_and_steps(fake, tmp_path):
    run = runlog.init(dir=str(tmp_path), capture_console=False, options=opts(fake))
    run.log({"a": 1.0}, commit=False)
    run.log({"b": 2.0}, commit=False)
    run.log({"c": 3.0})                 # commits step 0 with a, b, c
    run.log({"d": 4.0}, step=5, commit=False)
    run.log({"e": 5.0}, step=7)         # step change commits step 5 first
    with pytest.raises(ValueError, match="step 6 is lower than the run's last step 7"):
        run.log({"x": 1.0}, step=6)
    run.log({"f": 6.0})                 # auto step 8
    run.log({"g": 7.0}, commit=False)   # pending at 9, sent by flush
    run.flush()
    rows = history(fake, run.id)
    assert [(r.step, values(r)) for r in rows] == [
        (0, {"a": 1.0, "b": 2.0, "c": 3.0}),
        (5, {"d": 4.0}),
        (7, {"e": 5.0}),
        (8, {"f": 6.0}),
        (9, {"g": 7.0}),
    ]
    run.rewind(3)
    run.log({"h": 8.0})
    run.finish()
    assert history(fake, run.id)[-1].step == 3


def test_bad_values_raise_and_run_stays_usable(fake, tmp_path):
    run = runlog.init(dir=str(tmp_path), capture_console=False, options=opts(fake))
    run.log({"loss": 1.0})
    with pytest.raises(TypeError, match="'train/weights'"):
        run.log({"ok": 1.0, "train": {"weights": [1, 2]}})
    with pytest.raises(ValueError, match="empty"):
        run.log({"": 1.0})
    with pytest.raises(TypeError, match="'cfg'"):
        run.config["cfg"] = object()
    with pytest.raises(TypeError):
        run.log([("loss", 1.0)])
    run.log({"loss": 2.0})
    run.finish()
    rows = history(fake, run.id)
    assert [values(r) for r in rows] == [{"loss": 1.0}, {"loss": 2.0}]
    assert [r.step for r in rows] == [0, 1]


def test_rejections_surface_at_flush(fake, tmp_path):
    a = runlog.init(id="shared", resume="allow", dir=str(tmp_path),
                    capture_console=False, options=opts(fake))
    b = runlog.init(id="shared", resume="allow", dir=str(tmp_path),
                    capture_console=False, options=opts(fake))
    assert a.client_id != b.client_id
    a.log({"x": 1.0}, step=10)
    a.flush()
    b.log({"y": 1.0}, step=2)
    b.log({"y": 2.0}, step=20)
    with pytest.raises(runlog.RecordsRejectedError, match="step 2 is lower") as ei:
        b.flush()
    assert [r.client_seq for r in ei.value.rejections] == [1]
    b.flush()  # reported once
    b.finish()
    a.finish()
    assert [r.step for r in history(fake, "shared")] == [10, 20]


def test_many_rejections_stay_bounded(fake, tmp_path):
    a = runlog.init(id="shared", resume="allow", dir=str(tmp_path),
                    capture_console=False, options=opts(fake))
    b = runlog.init(id="shared", resume="allow", dir=str(tmp_path),
                    capture_console=False, options=opts(fake))
    a.log({"x": 1.0}, step=10)
    a.flush()
    for _ in range(500):
        b.log({"y": 1.0}, step=2)  # every one below the run's step 10
    with pytest.raises(runlog.RecordsRejectedError, match="rejected 500 record") as ei:
        b.flush()
    assert ei.value.total == 500
    assert len(ei.value.rejections) == 100
    assert [r.client_seq for r in ei.value.rejections] == list(range(1, 101))
    assert b.stats()["rejected"] == 500
    b.log({"y": 1.0}, step=2)
    with pytest.raises(runlog.RecordsRejectedError) as ei:
        b.flush()
    assert ei.value.total == 1 and [r.client_seq for r in ei.value.rejections] == [501]
    b.finish()
    a.finish()


def test_retryable_batch_error_is_retried(fake, tmp_path):
    run = runlog.init(dir=str(tmp_path), capture_console=False, options=opts(fake))
    fake.service.batch_errors = [grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]] * 3
    for i in range(50):
        run.log({"v": float(i)})
    run.flush(timeout=30)
    assert [values(r)["v"] for r in history(fake, run.id)] == [float(i) for i in range(50)]
    run.finish()


def test_fatal_batch_error_fails_the_run(fake, tmp_path):
    run = runlog.init(dir=str(tmp_path), capture_console=False, options=opts(fake))
    fake.service.batch_errors = [grpc.StatusCode.FAILED_PRECONDITION.value[0]] * 100
    run.log({"v": 1.0})
    with pytest.raises(runlog.RunClosedError, match="FAILED_PRECONDITION"):
        run.flush(timeout=30)
    with pytest.raises(runlog.RunClosedError):
        run.log({"v": 2.0})
    with pytest.raises(runlog.RunClosedError):
        run.finish()


def test_full_queue_waits_and_drops_nothing(fake, tmp_path):
    run = runlog.init(dir=str(tmp_path), capture_console=False,
                      options=opts(fake, queue_size=2, batch_records=1, max_in_flight=1))
    for i in range(300):
        run.log({"v": i})
    run.finish()
    assert [values(r)["v"] for r in history(fake, run.id)] == list(range(300))
    assert run.stats()["queue_full_waits"] > 0


def test_interrupted_finish_completes_with_its_exit(fake, tmp_path):
    # What SIGTERM (SystemExit) or Ctrl-C does to a finish() that waits for
    # acks: the run stays open, and the next finish() call, the exit hook's
    # with its own arguments, completes it with the first call's exit.
    run = runlog.init(dir=str(tmp_path), capture_console=False, options=opts(fake))
    fake.service.batch_errors = [grpc.StatusCode.UNAVAILABLE.value[0]] * 1000
    for i in range(10):
        run.log({"v": float(i)})

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    prev = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(KeyboardInterrupt):
            run.finish(7, message="interrupted")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, prev)
    assert "exit" not in kinds(fake, run.id)
    with pytest.raises(runlog.RunClosedError):
        run.log({"v": 1.0})  # finishing: no more records
    fake.service.batch_errors = []
    run.finish(143, reason="killed")
    assert [values(r)["v"] for r in history(fake, run.id)] == [float(i) for i in range(10)]
    ex = fake.service.runs[run.id].exit
    assert (ex.code, ex.reason, ex.message) == (7, record_pb2.EXIT_REASON_FAILED, "interrupted")
    run.finish()  # done: nothing more happens


def test_flush_timeout(fake, tmp_path):
    run = runlog.init(dir=str(tmp_path), capture_console=False, options=opts(fake))
    fake.service.batch_errors = [grpc.StatusCode.UNAVAILABLE.value[0]] * 1000
    run.log({"v": 1.0})
    with pytest.raises(TimeoutError, match="not yet durable"):
        run.flush(timeout=0.3)
    fake.service.batch_errors = []
    run.flush(timeout=30)
    run.finish()


def test_init_refusals(fake, tmp_path):
    with pytest.raises(runlog.RunlogError, match="NOT_FOUND") as ei:
        runlog.init(id="nope", resume="must", dir=str(tmp_path), capture_console=False,
                    options=opts(fake))
    assert ei.value.code == "NOT_FOUND"
    with pytest.raises(ValueError, match="resume"):
        runlog.init(resume="sometimes", dir=str(tmp_path), options=opts(fake))


def test_reconnect_resends_unacked_exactly_once(fake, tmp_path):
    from collections import Counter

    from fakeservice import FakeServer

    run = runlog.init(dir=str(tmp_path), capture_console=False,
                      options=opts(fake, reconnect_timeout=30))
    for i in range(2000):
        run.log({"i": i})
    run.flush()  # acknowledged: never to be sent again
    # The next batches reach the service, which "crashes" before it writes
    # or answers them: the client must resend those, once, and nothing it
    # saw acknowledged.
    fake.service.hold_acks = True
    for i in range(2000, 4000):
        run.log({"i": i})
    assert fake.service.held.wait(30), "no batch reached the service"
    fake.stop()
    fake.service.hold_acks = False
    again = FakeServer(fake.address[len("unix://"):], service=fake.service)
    try:
        for i in range(4000, 5000):
            run.log({"i": i})
        run.finish()
        assert [values(r)["i"] for r in history(again, run.id)] == list(range(5000))
        assert run.stats()["reconnects"] >= 1
        received = Counter()
        unanswered = set()
        for rec, held in again.service.received:
            if rec.WhichOneof("payload") == "history":
                i = values(rec.history)["i"]
                received[i] += 1
                if held:
                    unanswered.add(i)
        resent_acked = [i for i in range(2000) if received[i] != 1]
        assert not resent_acked, f"acknowledged records sent again: {resent_acked[:10]}..."
        assert unanswered, "no unanswered record: the test did not exercise a resend"
        wrong = [(i, received[i]) for i in range(5000) if received[i] != (2 if i in unanswered else 1)]
        assert not wrong, (f"(record, times received) not once, or twice when unanswered: "
                           f"{wrong[:10]}...")
    finally:
        again.stop()


def test_forked_child_cannot_use_the_parents_run(fake, tmp_path):
    import os

    run = runlog.init(dir=str(tmp_path), capture_console=False, options=opts(fake))
    run.log({"parent": 1.0})
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        import signal

        signal.alarm(20)  # a hung child must not hang the test
        try:
            run.log({"child": 1.0})
            msg = b"logged"
        except runlog.RunClosedError as e:
            msg = str(e).encode()
        except BaseException as e:  # anything else is a failure too
            msg = repr(e).encode()
        os.write(w, msg)
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        msg = f.read().decode()
    os.waitpid(pid, 0)
    assert "belongs to process" in msg and "runlog.init" in msg
    run.log({"parent": 2.0})
    run.finish()
    assert [values(r) for r in history(fake, run.id)] == [{"parent": 1.0}, {"parent": 2.0}]


def test_threads_share_a_run(fake, tmp_path):
    import threading

    run = runlog.init(dir=str(tmp_path), capture_console=False, options=opts(fake))

    def worker(t):
        for i in range(500):
            run.log({f"t{t}": i})

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.finish()
    rows = history(fake, run.id)
    assert [r.step for r in rows] == list(range(2000))
    for t in range(4):
        assert [values(r)[f"t{t}"] for r in rows if f"t{t}" in values(r)] == list(range(500))

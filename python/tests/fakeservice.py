"""An in-process stand-in for the runlog service, for client tests that need
to make the service misbehave on purpose (refuse batches, reject records).

It keeps runs in memory and follows the contract of service.proto: Init with
resume modes, Publish with in-band rejections and dedup by (client_id,
client_seq), Finish, Teardown and the health check. Everything about real
durability is tested against the real service binary instead.

Besides the run's records (deduplicated, as the service keeps them) it keeps
every record it received, duplicates included, so that a test can see what
a client resent; and it can drop batches unanswered, like a service that
died before it wrote and acknowledged them.
"""

from __future__ import annotations

import threading
from concurrent import futures
from typing import Dict, List, Tuple

import grpc

from runlog.v1 import record_pb2, service_pb2, service_pb2_grpc


class FakeRun:
    def __init__(self, run_id: str):
        self.id = run_id
        self.records: List[record_pb2.Record] = []
        self.clients: Dict[str, int] = {}
        self.last_step = -1
        self.exit = None


class FakeService(service_pb2_grpc.RunlogServicer):
    def __init__(self):
        self.mu = threading.Lock()
        # protects everything below
        self.runs: Dict[str, FakeRun] = {}
        self.batch_errors: List[int] = []  # codes for the next batches
        self.batches = 0
        self.teardowns: List[str] = []
        # Every record received, duplicates included, in arrival order, with
        # whether its batch went unanswered (hold_acks).
        self.received: List[Tuple[record_pb2.Record, bool]] = []
        # While hold_acks is set, batches are received (see received) but
        # neither written nor answered; held is set once one was.
        self.hold_acks = False
        self.held = threading.Event()
        self._n = 0

    # --- RPCs ---

    def Init(self, req, ctx):
        with self.mu:
            run_id = req.run_id
            if not run_id:
                self._n += 1
                run_id = f"fake{self._n}"
            run = self.runs.get(run_id)
            mode = req.resume or service_pb2.RESUME_MODE_NEVER
            if run is None and mode == service_pb2.RESUME_MODE_MUST:
                ctx.abort(grpc.StatusCode.NOT_FOUND, f"run {run_id} does not exist")
            if run is not None and mode == service_pb2.RESUME_MODE_NEVER:
                ctx.abort(grpc.StatusCode.ALREADY_EXISTS,
                          f"run {run_id} exists; pass resume=allow to continue it")
            if run is not None and run.exit is not None:
                ctx.abort(grpc.StatusCode.FAILED_PRECONDITION, f"run {run_id} is finished")
            resumed = run is not None
            if run is None:
                run = FakeRun(run_id)
                self.runs[run_id] = run
                self._append(run, record_pb2.Record(run=req.info))
            run.clients.setdefault(req.client_id, 0)
            return service_pb2.InitResponse(
                run_id=run_id,
                client_id=req.client_id,
                resumed=resumed,
                last_seq=len(run.records),
                last_step=run.last_step,
                acked_client_seq=run.clients[req.client_id],
                path=f"/fake/{run_id}",
                max_record_bytes=4 << 20,
            )

    def _append(self, run: FakeRun, rec: record_pb2.Record) -> None:
        rec.seq = len(run.records) + 1
        run.records.append(rec)

    def Publish(self, requests, ctx):
        for req in requests:
            resp = self._batch(req)
            if resp is not None:
                yield resp

    def _batch(self, req):
        with self.mu:
            self.batches += 1
            run = self.runs.get(req.run_id)
            resp = service_pb2.PublishResponse(run_id=req.run_id, batch=req.batch)
            if run is None:
                resp.error.code = grpc.StatusCode.NOT_FOUND.value[0]
                resp.error.message = f"run {req.run_id} is not open"
                return resp
            if self.batch_errors:
                resp.error.code = self.batch_errors.pop(0)
                resp.error.message = "injected"
                resp.acked_client_seq = run.clients.get(req.client_id, 0)
                return resp
            if self.hold_acks:
                for data in req.records:
                    self.received.append((record_pb2.Record.FromString(data), True))
                self.held.set()
                return None
            high = run.clients.get(req.client_id, 0)
            for i, data in enumerate(req.records):
                rec = record_pb2.Record.FromString(data)
                self.received.append((rec, False))
                if rec.client_seq <= high:
                    continue
                assert rec.client_seq == high + 1, (rec.client_seq, high)
                high = rec.client_seq
                problem = self._check(run, rec)
                if problem:
                    resp.rejections.add(
                        client_seq=rec.client_seq,
                        index=i,
                        error=service_pb2.Error(
                            code=grpc.StatusCode.INVALID_ARGUMENT.value[0], message=problem
                        ),
                    )
                    continue
                if rec.WhichOneof("payload") == "history":
                    run.last_step = rec.history.step
                if rec.WhichOneof("payload") == "rewind":
                    run.last_step = rec.rewind.step
                self._append(run, rec)
            run.clients[req.client_id] = high
            resp.acked_client_seq = high
            resp.last_seq = len(run.records)
            return resp

    def _check(self, run, rec):
        if rec.WhichOneof("payload") == "history":
            if rec.history.step < run.last_step:
                return (f"history step {rec.history.step} is lower than the run's "
                        f"last step {run.last_step}")
            for it in rec.history.items:
                if not it.key:
                    return 'history key "" is empty'
        return ""

    def Finish(self, req, ctx):
        with self.mu:
            run = self.runs[req.run_id]
            if run.exit is None:
                run.exit = req.exit
                self._append(run, record_pb2.Record(client_id=req.client_id, exit=req.exit))
            return service_pb2.FinishResponse(closed=True, seq=len(run.records))

    def Teardown(self, req, ctx):
        with self.mu:
            self.teardowns.append(req.client_id)
        return service_pb2.TeardownResponse()


class FakeServer:
    """A FakeService listening on a unix socket; stop() waits for it."""

    def __init__(self, socket_path: str, service: "FakeService | None" = None):
        # Passing the service of a stopped server "restarts" it with its
        # runs intact, as the real service reopens its logs.
        self.service = service or FakeService()
        self.address = "unix://" + socket_path
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        service_pb2_grpc.add_RunlogServicer_to_server(self.service, self.server)
        health = grpc.method_handlers_generic_handler(
            "grpc.health.v1.Health",
            {
                "Check": grpc.unary_unary_rpc_method_handler(
                    lambda req, ctx: b"\x08\x01",
                    request_deserializer=lambda b: b,
                    response_serializer=lambda b: b,
                )
            },
        )
        self.server.add_generic_rpc_handlers((health,))
        self.server.add_insecure_port(self.address)
        self.server.start()

    def stop(self) -> None:
        self.server.stop(grace=None).wait()

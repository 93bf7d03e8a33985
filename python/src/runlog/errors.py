"""Errors raised by the runlog client.

Every error the client raises on purpose derives from RunlogError. Bad values
passed to ``log``, ``config`` or ``summary`` raise the built-in ``TypeError`` or
``ValueError`` instead, naming the key, before anything is queued.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional


class RunlogError(Exception):
    """Base class of the client's own errors.

    ``code`` is the gRPC status code name (for example ``"NOT_FOUND"``) when
    the error came from the service, else None.
    """

    def __init__(self, message: str, code: Optional[str] = None):
        super().__init__(message)
        self.code = code


class ServiceNotFoundError(RunlogError):
    """No runlog binary to start the service with."""


class ServiceStartError(RunlogError):
    """The service was started but did not come up.

    ``log_path`` is the service's log file and ``log_tail`` its last lines.
    """

    def __init__(self, message: str, log_path: str = "", log_tail: str = ""):
        super().__init__(message)
        self.log_path = log_path
        self.log_tail = log_tail


class ServiceUnavailableError(RunlogError):
    """The service could not be reached again within the reconnect timeout."""


class RunClosedError(RunlogError):
    """The run is finished, or failed for good, and takes no more records."""


class Rejection(NamedTuple):
    """One record the service refused for good."""

    client_seq: int
    code: str
    message: str


class RecordsRejectedError(RunlogError):
    """The service refused some records; the others are durable.

    ``rejections`` lists the first refused records (at most 100) since the
    last time this error was raised, and ``total`` counts all of them.
    """

    def __init__(self, rejections: List[Rejection], total: Optional[int] = None):
        total = len(rejections) if total is None else total
        shown = "; ".join(
            f"record {r.client_seq}: {r.code}: {r.message}" for r in rejections[:5]
        )
        more = f" (and {total - 5} more)" if total > 5 else ""
        super().__init__(
            f"the service rejected {total} record(s): {shown}{more}",
            code=rejections[0].code if rejections else None,
        )
        self.rejections = rejections
        self.total = total

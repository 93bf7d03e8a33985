from runlog.v1 import record_pb2 as _record_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ResumeMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESUME_MODE_UNSPECIFIED: _ClassVar[ResumeMode]
    RESUME_MODE_NEVER: _ClassVar[ResumeMode]
    RESUME_MODE_ALLOW: _ClassVar[ResumeMode]
    RESUME_MODE_MUST: _ClassVar[ResumeMode]

class SyncMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SYNC_MODE_UNSPECIFIED: _ClassVar[SyncMode]
    SYNC_MODE_ONLINE: _ClassVar[SyncMode]
    SYNC_MODE_OFFLINE: _ClassVar[SyncMode]
RESUME_MODE_UNSPECIFIED: ResumeMode
RESUME_MODE_NEVER: ResumeMode
RESUME_MODE_ALLOW: ResumeMode
RESUME_MODE_MUST: ResumeMode
SYNC_MODE_UNSPECIFIED: SyncMode
SYNC_MODE_ONLINE: SyncMode
SYNC_MODE_OFFLINE: SyncMode

class InitRequest(_message.Message):
    __slots__ = ("run_id", "resume", "mode", "client_id", "info", "client_pid", "stats_disabled", "stats_interval_ms")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    CLIENT_PID_FIELD_NUMBER: _ClassVar[int]
    STATS_DISABLED_FIELD_NUMBER: _ClassVar[int]
    STATS_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    resume: ResumeMode
    mode: SyncMode
    client_id: str
    info: _record_pb2.RunInfo
    client_pid: int
    stats_disabled: bool
    stats_interval_ms: int
    def __init__(self, run_id: _Optional[str] = ..., resume: _Optional[_Union[ResumeMode, str]] = ..., mode: _Optional[_Union[SyncMode, str]] = ..., client_id: _Optional[str] = ..., info: _Optional[_Union[_record_pb2.RunInfo, _Mapping]] = ..., client_pid: _Optional[int] = ..., stats_disabled: _Optional[bool] = ..., stats_interval_ms: _Optional[int] = ...) -> None: ...

class InitResponse(_message.Message):
    __slots__ = ("run_id", "client_id", "resumed", "last_seq", "last_step", "acked_client_seq", "path", "max_record_bytes")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    LAST_STEP_FIELD_NUMBER: _ClassVar[int]
    ACKED_CLIENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    MAX_RECORD_BYTES_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    client_id: str
    resumed: bool
    last_seq: int
    last_step: int
    acked_client_seq: int
    path: str
    max_record_bytes: int
    def __init__(self, run_id: _Optional[str] = ..., client_id: _Optional[str] = ..., resumed: _Optional[bool] = ..., last_seq: _Optional[int] = ..., last_step: _Optional[int] = ..., acked_client_seq: _Optional[int] = ..., path: _Optional[str] = ..., max_record_bytes: _Optional[int] = ...) -> None: ...

class PublishRequest(_message.Message):
    __slots__ = ("run_id", "client_id", "batch", "records")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    client_id: str
    batch: int
    records: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, run_id: _Optional[str] = ..., client_id: _Optional[str] = ..., batch: _Optional[int] = ..., records: _Optional[_Iterable[bytes]] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class Rejection(_message.Message):
    __slots__ = ("client_seq", "error", "index")
    CLIENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    client_seq: int
    error: Error
    index: int
    def __init__(self, client_seq: _Optional[int] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., index: _Optional[int] = ...) -> None: ...

class PublishResponse(_message.Message):
    __slots__ = ("run_id", "batch", "acked_client_seq", "last_seq", "rejections", "error")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    ACKED_CLIENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    REJECTIONS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    batch: int
    acked_client_seq: int
    last_seq: int
    rejections: _containers.RepeatedCompositeFieldContainer[Rejection]
    error: Error
    def __init__(self, run_id: _Optional[str] = ..., batch: _Optional[int] = ..., acked_client_seq: _Optional[int] = ..., last_seq: _Optional[int] = ..., rejections: _Optional[_Iterable[_Union[Rejection, _Mapping]]] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...

class FinishRequest(_message.Message):
    __slots__ = ("run_id", "client_id", "exit")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    EXIT_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    client_id: str
    exit: _record_pb2.Exit
    def __init__(self, run_id: _Optional[str] = ..., client_id: _Optional[str] = ..., exit: _Optional[_Union[_record_pb2.Exit, _Mapping]] = ...) -> None: ...

class FinishResponse(_message.Message):
    __slots__ = ("closed", "seq")
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    closed: bool
    seq: int
    def __init__(self, closed: _Optional[bool] = ..., seq: _Optional[int] = ...) -> None: ...

class QueryRequest(_message.Message):
    __slots__ = ("run_id", "history_keys", "max_samples")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    HISTORY_KEYS_FIELD_NUMBER: _ClassVar[int]
    MAX_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    history_keys: _containers.RepeatedScalarFieldContainer[str]
    max_samples: int
    def __init__(self, run_id: _Optional[str] = ..., history_keys: _Optional[_Iterable[str]] = ..., max_samples: _Optional[int] = ...) -> None: ...

class QueryResponse(_message.Message):
    __slots__ = ("state", "history")
    STATE_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    state: _record_pb2.RunState
    history: _containers.RepeatedCompositeFieldContainer[_record_pb2.HistorySample]
    def __init__(self, state: _Optional[_Union[_record_pb2.RunState, _Mapping]] = ..., history: _Optional[_Iterable[_Union[_record_pb2.HistorySample, _Mapping]]] = ...) -> None: ...

class TeardownRequest(_message.Message):
    __slots__ = ("client_id",)
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    def __init__(self, client_id: _Optional[str] = ...) -> None: ...

class TeardownResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RunSummary(_message.Message):
    __slots__ = ("run_id", "project", "name", "status", "last_seq", "last_step", "size_bytes", "cursors", "sync_errors", "open", "error", "first_bad_seq")
    class CursorsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class SyncErrorsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    LAST_STEP_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CURSORS_FIELD_NUMBER: _ClassVar[int]
    SYNC_ERRORS_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FIRST_BAD_SEQ_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    project: str
    name: str
    status: _record_pb2.RunStatus
    last_seq: int
    last_step: int
    size_bytes: int
    cursors: _containers.ScalarMap[str, int]
    sync_errors: _containers.ScalarMap[str, str]
    open: bool
    error: str
    first_bad_seq: int
    def __init__(self, run_id: _Optional[str] = ..., project: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[_Union[_record_pb2.RunStatus, str]] = ..., last_seq: _Optional[int] = ..., last_step: _Optional[int] = ..., size_bytes: _Optional[int] = ..., cursors: _Optional[_Mapping[str, int]] = ..., sync_errors: _Optional[_Mapping[str, str]] = ..., open: _Optional[bool] = ..., error: _Optional[str] = ..., first_bad_seq: _Optional[int] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[RunSummary]
    def __init__(self, runs: _Optional[_Iterable[_Union[RunSummary, _Mapping]]] = ...) -> None: ...

class ReadRequest(_message.Message):
    __slots__ = ("run_id", "from_seq", "to_seq", "follow", "encoded")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    TO_SEQ_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    from_seq: int
    to_seq: int
    follow: bool
    encoded: bool
    def __init__(self, run_id: _Optional[str] = ..., from_seq: _Optional[int] = ..., to_seq: _Optional[int] = ..., follow: _Optional[bool] = ..., encoded: _Optional[bool] = ...) -> None: ...

class ReadResponse(_message.Message):
    __slots__ = ("records", "encoded", "last_seq", "finished")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[_record_pb2.Record]
    encoded: _containers.RepeatedScalarFieldContainer[bytes]
    last_seq: int
    finished: bool
    def __init__(self, records: _Optional[_Iterable[_Union[_record_pb2.Record, _Mapping]]] = ..., encoded: _Optional[_Iterable[bytes]] = ..., last_seq: _Optional[int] = ..., finished: _Optional[bool] = ...) -> None: ...

class CorruptRecord(_message.Message):
    __slots__ = ("seq", "path", "reason")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    seq: int
    path: str
    reason: str
    def __init__(self, seq: _Optional[int] = ..., path: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class Problem(_message.Message):
    __slots__ = ("seq", "kind", "message")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    seq: int
    kind: str
    message: str
    def __init__(self, seq: _Optional[int] = ..., kind: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("records", "problems", "first_bad_seq", "last_good_seq")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    FIRST_BAD_SEQ_FIELD_NUMBER: _ClassVar[int]
    LAST_GOOD_SEQ_FIELD_NUMBER: _ClassVar[int]
    records: int
    problems: _containers.RepeatedCompositeFieldContainer[Problem]
    first_bad_seq: int
    last_good_seq: int
    def __init__(self, records: _Optional[int] = ..., problems: _Optional[_Iterable[_Union[Problem, _Mapping]]] = ..., first_bad_seq: _Optional[int] = ..., last_good_seq: _Optional[int] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SenderStatus(_message.Message):
    __slots__ = ("upstream", "lag_records", "last_error")
    UPSTREAM_FIELD_NUMBER: _ClassVar[int]
    LAG_RECORDS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    upstream: str
    lag_records: int
    last_error: str
    def __init__(self, upstream: _Optional[str] = ..., lag_records: _Optional[int] = ..., last_error: _Optional[str] = ...) -> None: ...

class OpenRunStatus(_message.Message):
    __slots__ = ("run_id", "last_seq", "queue_records", "queue_bytes", "clients", "senders", "stats_interval_ms")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    QUEUE_RECORDS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CLIENTS_FIELD_NUMBER: _ClassVar[int]
    SENDERS_FIELD_NUMBER: _ClassVar[int]
    STATS_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    last_seq: int
    queue_records: int
    queue_bytes: int
    clients: int
    senders: _containers.RepeatedCompositeFieldContainer[SenderStatus]
    stats_interval_ms: int
    def __init__(self, run_id: _Optional[str] = ..., last_seq: _Optional[int] = ..., queue_records: _Optional[int] = ..., queue_bytes: _Optional[int] = ..., clients: _Optional[int] = ..., senders: _Optional[_Iterable[_Union[SenderStatus, _Mapping]]] = ..., stats_interval_ms: _Optional[int] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("pid", "start_time_unix_nano", "root", "disk_free_bytes", "disk_total_bytes", "runs", "records_appended", "commits")
    PID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    DISK_FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    DISK_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    RECORDS_APPENDED_FIELD_NUMBER: _ClassVar[int]
    COMMITS_FIELD_NUMBER: _ClassVar[int]
    pid: int
    start_time_unix_nano: int
    root: str
    disk_free_bytes: int
    disk_total_bytes: int
    runs: _containers.RepeatedCompositeFieldContainer[OpenRunStatus]
    records_appended: int
    commits: int
    def __init__(self, pid: _Optional[int] = ..., start_time_unix_nano: _Optional[int] = ..., root: _Optional[str] = ..., disk_free_bytes: _Optional[int] = ..., disk_total_bytes: _Optional[int] = ..., runs: _Optional[_Iterable[_Union[OpenRunStatus, _Mapping]]] = ..., records_appended: _Optional[int] = ..., commits: _Optional[int] = ...) -> None: ...

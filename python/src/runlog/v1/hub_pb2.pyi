from runlog.v1 import record_pb2 as _record_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IngestRequest(_message.Message):
    __slots__ = ("run_id", "batch", "records")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    batch: int
    records: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, run_id: _Optional[str] = ..., batch: _Optional[int] = ..., records: _Optional[_Iterable[bytes]] = ...) -> None: ...

class IngestResponse(_message.Message):
    __slots__ = ("run_id", "batch", "high_water")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    HIGH_WATER_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    batch: int
    high_water: int
    def __init__(self, run_id: _Optional[str] = ..., batch: _Optional[int] = ..., high_water: _Optional[int] = ...) -> None: ...

class HighWaterMark(_message.Message):
    __slots__ = ("run_id", "high_water")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    HIGH_WATER_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    high_water: int
    def __init__(self, run_id: _Optional[str] = ..., high_water: _Optional[int] = ...) -> None: ...

class HubListRunsRequest(_message.Message):
    __slots__ = ("project",)
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    project: str
    def __init__(self, project: _Optional[str] = ...) -> None: ...

class HubRun(_message.Message):
    __slots__ = ("run_id", "project", "name", "status", "high_water", "last_step", "history_rows", "start_time_unix_nano", "last_time_unix_nano", "updated_unix_nano", "digest")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HIGH_WATER_FIELD_NUMBER: _ClassVar[int]
    LAST_STEP_FIELD_NUMBER: _ClassVar[int]
    HISTORY_ROWS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    LAST_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    UPDATED_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    project: str
    name: str
    status: _record_pb2.RunStatus
    high_water: int
    last_step: int
    history_rows: int
    start_time_unix_nano: int
    last_time_unix_nano: int
    updated_unix_nano: int
    digest: bytes
    def __init__(self, run_id: _Optional[str] = ..., project: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[_Union[_record_pb2.RunStatus, str]] = ..., high_water: _Optional[int] = ..., last_step: _Optional[int] = ..., history_rows: _Optional[int] = ..., start_time_unix_nano: _Optional[int] = ..., last_time_unix_nano: _Optional[int] = ..., updated_unix_nano: _Optional[int] = ..., digest: _Optional[bytes] = ...) -> None: ...

class HubListRunsResponse(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[HubRun]
    def __init__(self, runs: _Optional[_Iterable[_Union[HubRun, _Mapping]]] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class GetRunResponse(_message.Message):
    __slots__ = ("run", "state")
    RUN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    run: HubRun
    state: _record_pb2.RunState
    def __init__(self, run: _Optional[_Union[HubRun, _Mapping]] = ..., state: _Optional[_Union[_record_pb2.RunState, _Mapping]] = ...) -> None: ...

class HubHistoryRequest(_message.Message):
    __slots__ = ("run_id", "keys", "min_step", "max_step", "max_samples")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    MIN_STEP_FIELD_NUMBER: _ClassVar[int]
    MAX_STEP_FIELD_NUMBER: _ClassVar[int]
    MAX_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    keys: _containers.RepeatedScalarFieldContainer[str]
    min_step: int
    max_step: int
    max_samples: int
    def __init__(self, run_id: _Optional[str] = ..., keys: _Optional[_Iterable[str]] = ..., min_step: _Optional[int] = ..., max_step: _Optional[int] = ..., max_samples: _Optional[int] = ...) -> None: ...

class HubHistoryResponse(_message.Message):
    __slots__ = ("samples",)
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    samples: _containers.RepeatedCompositeFieldContainer[_record_pb2.HistorySample]
    def __init__(self, samples: _Optional[_Iterable[_Union[_record_pb2.HistorySample, _Mapping]]] = ...) -> None: ...

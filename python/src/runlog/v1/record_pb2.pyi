from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExitReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXIT_REASON_UNSPECIFIED: _ClassVar[ExitReason]
    EXIT_REASON_FINISHED: _ClassVar[ExitReason]
    EXIT_REASON_FAILED: _ClassVar[ExitReason]
    EXIT_REASON_CRASHED: _ClassVar[ExitReason]
    EXIT_REASON_KILLED: _ClassVar[ExitReason]
    EXIT_REASON_PREEMPTED: _ClassVar[ExitReason]

class RunStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATUS_UNSPECIFIED: _ClassVar[RunStatus]
    RUN_STATUS_RUNNING: _ClassVar[RunStatus]
    RUN_STATUS_FINISHED: _ClassVar[RunStatus]
    RUN_STATUS_FAILED: _ClassVar[RunStatus]
    RUN_STATUS_CRASHED: _ClassVar[RunStatus]
    RUN_STATUS_KILLED: _ClassVar[RunStatus]
    RUN_STATUS_PREEMPTED: _ClassVar[RunStatus]
EXIT_REASON_UNSPECIFIED: ExitReason
EXIT_REASON_FINISHED: ExitReason
EXIT_REASON_FAILED: ExitReason
EXIT_REASON_CRASHED: ExitReason
EXIT_REASON_KILLED: ExitReason
EXIT_REASON_PREEMPTED: ExitReason
RUN_STATUS_UNSPECIFIED: RunStatus
RUN_STATUS_RUNNING: RunStatus
RUN_STATUS_FINISHED: RunStatus
RUN_STATUS_FAILED: RunStatus
RUN_STATUS_CRASHED: RunStatus
RUN_STATUS_KILLED: RunStatus
RUN_STATUS_PREEMPTED: RunStatus

class Value(_message.Message):
    __slots__ = ("double_value", "int_value", "bool_value", "string_value", "json_value")
    DOUBLE_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    JSON_VALUE_FIELD_NUMBER: _ClassVar[int]
    double_value: float
    int_value: int
    bool_value: bool
    string_value: str
    json_value: bytes
    def __init__(self, double_value: _Optional[float] = ..., int_value: _Optional[int] = ..., bool_value: _Optional[bool] = ..., string_value: _Optional[str] = ..., json_value: _Optional[bytes] = ...) -> None: ...

class Item(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: Value
    def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...

class Record(_message.Message):
    __slots__ = ("seq", "id", "time_unix_nano", "client_id", "client_seq", "synthesized", "run", "config", "history", "summary", "output", "file", "stats", "metric", "alert", "rewind", "exit")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    SYNTHESIZED_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    ALERT_FIELD_NUMBER: _ClassVar[int]
    REWIND_FIELD_NUMBER: _ClassVar[int]
    EXIT_FIELD_NUMBER: _ClassVar[int]
    seq: int
    id: bytes
    time_unix_nano: int
    client_id: str
    client_seq: int
    synthesized: bool
    run: RunInfo
    config: ConfigUpdate
    history: HistoryRow
    summary: SummaryUpdate
    output: ConsoleOutput
    file: FileRef
    stats: SystemStats
    metric: MetricDefinition
    alert: Alert
    rewind: Rewind
    exit: Exit
    def __init__(self, seq: _Optional[int] = ..., id: _Optional[bytes] = ..., time_unix_nano: _Optional[int] = ..., client_id: _Optional[str] = ..., client_seq: _Optional[int] = ..., synthesized: _Optional[bool] = ..., run: _Optional[_Union[RunInfo, _Mapping]] = ..., config: _Optional[_Union[ConfigUpdate, _Mapping]] = ..., history: _Optional[_Union[HistoryRow, _Mapping]] = ..., summary: _Optional[_Union[SummaryUpdate, _Mapping]] = ..., output: _Optional[_Union[ConsoleOutput, _Mapping]] = ..., file: _Optional[_Union[FileRef, _Mapping]] = ..., stats: _Optional[_Union[SystemStats, _Mapping]] = ..., metric: _Optional[_Union[MetricDefinition, _Mapping]] = ..., alert: _Optional[_Union[Alert, _Mapping]] = ..., rewind: _Optional[_Union[Rewind, _Mapping]] = ..., exit: _Optional[_Union[Exit, _Mapping]] = ...) -> None: ...

class RunInfo(_message.Message):
    __slots__ = ("project", "name", "group", "tags", "notes", "host", "program", "start_time_unix_nano", "job_type", "args", "git_remote", "git_commit", "entity")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    JOB_TYPE_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    GIT_REMOTE_FIELD_NUMBER: _ClassVar[int]
    GIT_COMMIT_FIELD_NUMBER: _ClassVar[int]
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    project: str
    name: str
    group: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    notes: str
    host: str
    program: str
    start_time_unix_nano: int
    job_type: str
    args: _containers.RepeatedScalarFieldContainer[str]
    git_remote: str
    git_commit: str
    entity: str
    def __init__(self, project: _Optional[str] = ..., name: _Optional[str] = ..., group: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., notes: _Optional[str] = ..., host: _Optional[str] = ..., program: _Optional[str] = ..., start_time_unix_nano: _Optional[int] = ..., job_type: _Optional[str] = ..., args: _Optional[_Iterable[str]] = ..., git_remote: _Optional[str] = ..., git_commit: _Optional[str] = ..., entity: _Optional[str] = ...) -> None: ...

class ConfigUpdate(_message.Message):
    __slots__ = ("set", "remove")
    SET_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    set: _containers.RepeatedCompositeFieldContainer[Item]
    remove: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, set: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., remove: _Optional[_Iterable[str]] = ...) -> None: ...

class HistoryRow(_message.Message):
    __slots__ = ("step", "items")
    STEP_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    step: int
    items: _containers.RepeatedCompositeFieldContainer[Item]
    def __init__(self, step: _Optional[int] = ..., items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ...) -> None: ...

class SummaryUpdate(_message.Message):
    __slots__ = ("set", "remove")
    SET_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    set: _containers.RepeatedCompositeFieldContainer[Item]
    remove: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, set: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., remove: _Optional[_Iterable[str]] = ...) -> None: ...

class ConsoleOutput(_message.Message):
    __slots__ = ("stream", "text")
    class Stream(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STREAM_UNSPECIFIED: _ClassVar[ConsoleOutput.Stream]
        STREAM_STDOUT: _ClassVar[ConsoleOutput.Stream]
        STREAM_STDERR: _ClassVar[ConsoleOutput.Stream]
    STREAM_UNSPECIFIED: ConsoleOutput.Stream
    STREAM_STDOUT: ConsoleOutput.Stream
    STREAM_STDERR: ConsoleOutput.Stream
    STREAM_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    stream: ConsoleOutput.Stream
    text: str
    def __init__(self, stream: _Optional[_Union[ConsoleOutput.Stream, str]] = ..., text: _Optional[str] = ...) -> None: ...

class FileRef(_message.Message):
    __slots__ = ("path", "size", "sha256", "mime_type")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    path: str
    size: int
    sha256: bytes
    mime_type: str
    def __init__(self, path: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[bytes] = ..., mime_type: _Optional[str] = ...) -> None: ...

class SystemStats(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Item]
    def __init__(self, items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ...) -> None: ...

class MetricDefinition(_message.Message):
    __slots__ = ("name", "step_metric", "summary", "goal", "hidden")
    class Summary(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        SUMMARY_UNSPECIFIED: _ClassVar[MetricDefinition.Summary]
        SUMMARY_LAST: _ClassVar[MetricDefinition.Summary]
        SUMMARY_MIN: _ClassVar[MetricDefinition.Summary]
        SUMMARY_MAX: _ClassVar[MetricDefinition.Summary]
        SUMMARY_MEAN: _ClassVar[MetricDefinition.Summary]
        SUMMARY_NONE: _ClassVar[MetricDefinition.Summary]
    SUMMARY_UNSPECIFIED: MetricDefinition.Summary
    SUMMARY_LAST: MetricDefinition.Summary
    SUMMARY_MIN: MetricDefinition.Summary
    SUMMARY_MAX: MetricDefinition.Summary
    SUMMARY_MEAN: MetricDefinition.Summary
    SUMMARY_NONE: MetricDefinition.Summary
    class Goal(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        GOAL_UNSPECIFIED: _ClassVar[MetricDefinition.Goal]
        GOAL_MINIMIZE: _ClassVar[MetricDefinition.Goal]
        GOAL_MAXIMIZE: _ClassVar[MetricDefinition.Goal]
    GOAL_UNSPECIFIED: MetricDefinition.Goal
    GOAL_MINIMIZE: MetricDefinition.Goal
    GOAL_MAXIMIZE: MetricDefinition.Goal
    NAME_FIELD_NUMBER: _ClassVar[int]
    STEP_METRIC_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    GOAL_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    step_metric: str
    summary: MetricDefinition.Summary
    goal: MetricDefinition.Goal
    hidden: bool
    def __init__(self, name: _Optional[str] = ..., step_metric: _Optional[str] = ..., summary: _Optional[_Union[MetricDefinition.Summary, str]] = ..., goal: _Optional[_Union[MetricDefinition.Goal, str]] = ..., hidden: _Optional[bool] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("title", "text", "level")
    class Level(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        LEVEL_UNSPECIFIED: _ClassVar[Alert.Level]
        LEVEL_INFO: _ClassVar[Alert.Level]
        LEVEL_WARN: _ClassVar[Alert.Level]
        LEVEL_ERROR: _ClassVar[Alert.Level]
    LEVEL_UNSPECIFIED: Alert.Level
    LEVEL_INFO: Alert.Level
    LEVEL_WARN: Alert.Level
    LEVEL_ERROR: Alert.Level
    TITLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    title: str
    text: str
    level: Alert.Level
    def __init__(self, title: _Optional[str] = ..., text: _Optional[str] = ..., level: _Optional[_Union[Alert.Level, str]] = ...) -> None: ...

class Rewind(_message.Message):
    __slots__ = ("step",)
    STEP_FIELD_NUMBER: _ClassVar[int]
    step: int
    def __init__(self, step: _Optional[int] = ...) -> None: ...

class Exit(_message.Message):
    __slots__ = ("code", "reason", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    reason: ExitReason
    message: str
    def __init__(self, code: _Optional[int] = ..., reason: _Optional[_Union[ExitReason, str]] = ..., message: _Optional[str] = ...) -> None: ...

class HistorySample(_message.Message):
    __slots__ = ("step", "items")
    STEP_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    step: int
    items: _containers.RepeatedCompositeFieldContainer[Item]
    def __init__(self, step: _Optional[int] = ..., items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ...) -> None: ...

class RunState(_message.Message):
    __slots__ = ("run_id", "info", "status", "config", "summary", "history_rows", "last_step", "last_seq", "exit", "start_time_unix_nano", "last_time_unix_nano", "records")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    HISTORY_ROWS_FIELD_NUMBER: _ClassVar[int]
    LAST_STEP_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    EXIT_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    LAST_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    info: RunInfo
    status: RunStatus
    config: _containers.RepeatedCompositeFieldContainer[Item]
    summary: _containers.RepeatedCompositeFieldContainer[Item]
    history_rows: int
    last_step: int
    last_seq: int
    exit: Exit
    start_time_unix_nano: int
    last_time_unix_nano: int
    records: int
    def __init__(self, run_id: _Optional[str] = ..., info: _Optional[_Union[RunInfo, _Mapping]] = ..., status: _Optional[_Union[RunStatus, str]] = ..., config: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., summary: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., history_rows: _Optional[int] = ..., last_step: _Optional[int] = ..., last_seq: _Optional[int] = ..., exit: _Optional[_Union[Exit, _Mapping]] = ..., start_time_unix_nano: _Optional[int] = ..., last_time_unix_nano: _Optional[int] = ..., records: _Optional[int] = ...) -> None: ...

from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StageAdapterRequest(_message.Message):
    __slots__ = ("name", "base_version", "retire")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BASE_VERSION_FIELD_NUMBER: _ClassVar[int]
    RETIRE_FIELD_NUMBER: _ClassVar[int]
    name: str
    base_version: str
    retire: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., base_version: _Optional[str] = ..., retire: _Optional[_Iterable[str]] = ...) -> None: ...

class StageAdapterResponse(_message.Message):
    __slots__ = ("load_seconds", "staged")
    LOAD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STAGED_FIELD_NUMBER: _ClassVar[int]
    load_seconds: float
    staged: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, load_seconds: _Optional[float] = ..., staged: _Optional[_Iterable[str]] = ...) -> None: ...

class VersionInfo(_message.Message):
    __slots__ = ("version", "parent", "step", "status", "reason", "metrics_json", "created_at")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    METRICS_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    version: str
    parent: str
    step: int
    status: str
    reason: str
    metrics_json: str
    created_at: float
    def __init__(self, version: _Optional[str] = ..., parent: _Optional[str] = ..., step: _Optional[int] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ..., metrics_json: _Optional[str] = ..., created_at: _Optional[float] = ...) -> None: ...

class ListVersionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListVersionsResponse(_message.Message):
    __slots__ = ("current", "versions", "history", "serving_note")
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    SERVING_NOTE_FIELD_NUMBER: _ClassVar[int]
    current: str
    versions: _containers.RepeatedCompositeFieldContainer[VersionInfo]
    history: _containers.RepeatedScalarFieldContainer[str]
    serving_note: str
    def __init__(self, current: _Optional[str] = ..., versions: _Optional[_Iterable[_Union[VersionInfo, _Mapping]]] = ..., history: _Optional[_Iterable[str]] = ..., serving_note: _Optional[str] = ...) -> None: ...

class PromoteRequest(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    def __init__(self, version: _Optional[str] = ...) -> None: ...

class RollbackRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SwapResponse(_message.Message):
    __slots__ = ("previous", "current", "swap_seconds")
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    SWAP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    previous: str
    current: str
    swap_seconds: float
    def __init__(self, previous: _Optional[str] = ..., current: _Optional[str] = ..., swap_seconds: _Optional[float] = ...) -> None: ...

class TrainingControlRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TrainingStatus(_message.Message):
    __slots__ = ("state", "paused", "status_json")
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    STATUS_JSON_FIELD_NUMBER: _ClassVar[int]
    state: str
    paused: bool
    status_json: str
    def __init__(self, state: _Optional[str] = ..., paused: _Optional[bool] = ..., status_json: _Optional[str] = ...) -> None: ...

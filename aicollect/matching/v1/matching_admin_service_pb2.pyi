import datetime

from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MatchingSettings(_message.Message):
    __slots__ = ("qbo_oob_amount_tolerance_cents", "qbo_oob_match_window_minutes", "update_time", "update_actor")
    QBO_OOB_AMOUNT_TOLERANCE_CENTS_FIELD_NUMBER: _ClassVar[int]
    QBO_OOB_MATCH_WINDOW_MINUTES_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_ACTOR_FIELD_NUMBER: _ClassVar[int]
    qbo_oob_amount_tolerance_cents: int
    qbo_oob_match_window_minutes: int
    update_time: _timestamp_pb2.Timestamp
    update_actor: str
    def __init__(self, qbo_oob_amount_tolerance_cents: _Optional[int] = ..., qbo_oob_match_window_minutes: _Optional[int] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_actor: _Optional[str] = ...) -> None: ...

class GetMatchingSettingsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetMatchingSettingsResponse(_message.Message):
    __slots__ = ("settings",)
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    settings: MatchingSettings
    def __init__(self, settings: _Optional[_Union[MatchingSettings, _Mapping]] = ...) -> None: ...

class UpdateMatchingSettingsRequest(_message.Message):
    __slots__ = ("settings", "update_mask", "actor", "reason")
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    settings: MatchingSettings
    update_mask: _field_mask_pb2.FieldMask
    actor: str
    reason: str
    def __init__(self, settings: _Optional[_Union[MatchingSettings, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class UpdateMatchingSettingsResponse(_message.Message):
    __slots__ = ("settings",)
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    settings: MatchingSettings
    def __init__(self, settings: _Optional[_Union[MatchingSettings, _Mapping]] = ...) -> None: ...

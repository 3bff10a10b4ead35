import datetime

from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TenantSettings(_message.Message):
    __slots__ = ("tenant_id", "qbo_enabled", "update_time")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    QBO_ENABLED_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    qbo_enabled: bool
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, tenant_id: _Optional[str] = ..., qbo_enabled: _Optional[bool] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PlatformSettings(_message.Message):
    __slots__ = ("qbo_kill_switch", "qbo_oob_amount_tolerance_cents", "qbo_oob_match_window_minutes", "update_time")
    QBO_KILL_SWITCH_FIELD_NUMBER: _ClassVar[int]
    QBO_OOB_AMOUNT_TOLERANCE_CENTS_FIELD_NUMBER: _ClassVar[int]
    QBO_OOB_MATCH_WINDOW_MINUTES_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    qbo_kill_switch: bool
    qbo_oob_amount_tolerance_cents: int
    qbo_oob_match_window_minutes: int
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, qbo_kill_switch: _Optional[bool] = ..., qbo_oob_amount_tolerance_cents: _Optional[int] = ..., qbo_oob_match_window_minutes: _Optional[int] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SettingsAuditEvent(_message.Message):
    __slots__ = ("event_id", "setting", "tenant_id", "old_value", "new_value", "actor", "reason", "create_time")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SETTING_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    OLD_VALUE_FIELD_NUMBER: _ClassVar[int]
    NEW_VALUE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    setting: str
    tenant_id: str
    old_value: str
    new_value: str
    actor: str
    reason: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, event_id: _Optional[str] = ..., setting: _Optional[str] = ..., tenant_id: _Optional[str] = ..., old_value: _Optional[str] = ..., new_value: _Optional[str] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetTenantSettingsRequest(_message.Message):
    __slots__ = ("tenant_id",)
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    def __init__(self, tenant_id: _Optional[str] = ...) -> None: ...

class GetTenantSettingsResponse(_message.Message):
    __slots__ = ("settings",)
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    settings: TenantSettings
    def __init__(self, settings: _Optional[_Union[TenantSettings, _Mapping]] = ...) -> None: ...

class SetTenantSettingsRequest(_message.Message):
    __slots__ = ("tenant_id", "qbo_enabled", "actor", "reason")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    QBO_ENABLED_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    qbo_enabled: bool
    actor: str
    reason: str
    def __init__(self, tenant_id: _Optional[str] = ..., qbo_enabled: _Optional[bool] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class SetTenantSettingsResponse(_message.Message):
    __slots__ = ("settings",)
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    settings: TenantSettings
    def __init__(self, settings: _Optional[_Union[TenantSettings, _Mapping]] = ...) -> None: ...

class GetPlatformSettingsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetPlatformSettingsResponse(_message.Message):
    __slots__ = ("settings",)
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    settings: PlatformSettings
    def __init__(self, settings: _Optional[_Union[PlatformSettings, _Mapping]] = ...) -> None: ...

class UpdatePlatformSettingsRequest(_message.Message):
    __slots__ = ("settings", "update_mask", "actor", "reason")
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    settings: PlatformSettings
    update_mask: _field_mask_pb2.FieldMask
    actor: str
    reason: str
    def __init__(self, settings: _Optional[_Union[PlatformSettings, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class UpdatePlatformSettingsResponse(_message.Message):
    __slots__ = ("settings",)
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    settings: PlatformSettings
    def __init__(self, settings: _Optional[_Union[PlatformSettings, _Mapping]] = ...) -> None: ...

class ListSettingsAuditEventsRequest(_message.Message):
    __slots__ = ("tenant_id", "setting", "page_size", "page_token")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    SETTING_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    setting: str
    page_size: int
    page_token: str
    def __init__(self, tenant_id: _Optional[str] = ..., setting: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSettingsAuditEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[SettingsAuditEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[SettingsAuditEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ReplayDeadLettersRequest(_message.Message):
    __slots__ = ("tenant_id", "realm_id", "event_ids", "actor", "reason")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    REALM_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    realm_id: str
    event_ids: _containers.RepeatedScalarFieldContainer[str]
    actor: str
    reason: str
    def __init__(self, tenant_id: _Optional[str] = ..., realm_id: _Optional[str] = ..., event_ids: _Optional[_Iterable[str]] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReplayDeadLettersResponse(_message.Message):
    __slots__ = ("replayed_count",)
    REPLAYED_COUNT_FIELD_NUMBER: _ClassVar[int]
    replayed_count: int
    def __init__(self, replayed_count: _Optional[int] = ...) -> None: ...

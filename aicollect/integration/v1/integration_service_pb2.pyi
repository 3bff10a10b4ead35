import datetime

from aicollect.type.v1 import money_pb2 as _money_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConnectionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONNECTION_STATE_UNSPECIFIED: _ClassVar[ConnectionState]
    CONNECTION_STATE_NOT_CONNECTED: _ClassVar[ConnectionState]
    CONNECTION_STATE_CONNECTED: _ClassVar[ConnectionState]
    CONNECTION_STATE_NEEDS_REAUTHORIZATION: _ClassVar[ConnectionState]
    CONNECTION_STATE_DISCONNECTED: _ClassVar[ConnectionState]

class DisconnectOrigin(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DISCONNECT_ORIGIN_UNSPECIFIED: _ClassVar[DisconnectOrigin]
    DISCONNECT_ORIGIN_USER: _ClassVar[DisconnectOrigin]
    DISCONNECT_ORIGIN_INTUIT: _ClassVar[DisconnectOrigin]

class TokenRevocation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TOKEN_REVOCATION_UNSPECIFIED: _ClassVar[TokenRevocation]
    TOKEN_REVOCATION_REVOKED: _ClassVar[TokenRevocation]
    TOKEN_REVOCATION_PENDING_RETRY: _ClassVar[TokenRevocation]
    TOKEN_REVOCATION_NOT_NEEDED: _ClassVar[TokenRevocation]

class ConnectErrorReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONNECT_ERROR_REASON_UNSPECIFIED: _ClassVar[ConnectErrorReason]
    CONNECT_ERROR_REASON_INVALID_STATE: _ClassVar[ConnectErrorReason]
    CONNECT_ERROR_REASON_EXPIRED_STATE: _ClassVar[ConnectErrorReason]
    CONNECT_ERROR_REASON_STATE_ALREADY_USED: _ClassVar[ConnectErrorReason]
    CONNECT_ERROR_REASON_ACCESS_DENIED: _ClassVar[ConnectErrorReason]
    CONNECT_ERROR_REASON_AUTHORIZATION_ERROR: _ClassVar[ConnectErrorReason]
    CONNECT_ERROR_REASON_MISSING_REALM: _ClassVar[ConnectErrorReason]
    CONNECT_ERROR_REASON_CODE_EXCHANGE_FAILED: _ClassVar[ConnectErrorReason]
    CONNECT_ERROR_REASON_REALM_IN_USE: _ClassVar[ConnectErrorReason]
    CONNECT_ERROR_REASON_INTEGRATION_DISABLED: _ClassVar[ConnectErrorReason]
    CONNECT_ERROR_REASON_INTERNAL_ERROR: _ClassVar[ConnectErrorReason]

class BackfillPhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BACKFILL_PHASE_UNSPECIFIED: _ClassVar[BackfillPhase]
    BACKFILL_PHASE_NOT_STARTED: _ClassVar[BackfillPhase]
    BACKFILL_PHASE_RUNNING: _ClassVar[BackfillPhase]
    BACKFILL_PHASE_COMPLETED: _ClassVar[BackfillPhase]
    BACKFILL_PHASE_FAILED: _ClassVar[BackfillPhase]

class SyncMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SYNC_MODE_UNSPECIFIED: _ClassVar[SyncMode]
    SYNC_MODE_FULL: _ClassVar[SyncMode]
    SYNC_MODE_INCREMENTAL: _ClassVar[SyncMode]

class PlacementExclusionReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PLACEMENT_EXCLUSION_REASON_UNSPECIFIED: _ClassVar[PlacementExclusionReason]
    PLACEMENT_EXCLUSION_REASON_TOO_FEW_DAYS_PAST_DUE: _ClassVar[PlacementExclusionReason]
    PLACEMENT_EXCLUSION_REASON_BALANCE_BELOW_MINIMUM: _ClassVar[PlacementExclusionReason]
    PLACEMENT_EXCLUSION_REASON_BALANCE_ABOVE_MAXIMUM: _ClassVar[PlacementExclusionReason]
    PLACEMENT_EXCLUSION_REASON_CURRENCY_NOT_ALLOWED: _ClassVar[PlacementExclusionReason]
    PLACEMENT_EXCLUSION_REASON_CUSTOMER_EXCLUDED: _ClassVar[PlacementExclusionReason]
    PLACEMENT_EXCLUSION_REASON_CUSTOMER_NOT_INCLUDED: _ClassVar[PlacementExclusionReason]
CONNECTION_STATE_UNSPECIFIED: ConnectionState
CONNECTION_STATE_NOT_CONNECTED: ConnectionState
CONNECTION_STATE_CONNECTED: ConnectionState
CONNECTION_STATE_NEEDS_REAUTHORIZATION: ConnectionState
CONNECTION_STATE_DISCONNECTED: ConnectionState
DISCONNECT_ORIGIN_UNSPECIFIED: DisconnectOrigin
DISCONNECT_ORIGIN_USER: DisconnectOrigin
DISCONNECT_ORIGIN_INTUIT: DisconnectOrigin
TOKEN_REVOCATION_UNSPECIFIED: TokenRevocation
TOKEN_REVOCATION_REVOKED: TokenRevocation
TOKEN_REVOCATION_PENDING_RETRY: TokenRevocation
TOKEN_REVOCATION_NOT_NEEDED: TokenRevocation
CONNECT_ERROR_REASON_UNSPECIFIED: ConnectErrorReason
CONNECT_ERROR_REASON_INVALID_STATE: ConnectErrorReason
CONNECT_ERROR_REASON_EXPIRED_STATE: ConnectErrorReason
CONNECT_ERROR_REASON_STATE_ALREADY_USED: ConnectErrorReason
CONNECT_ERROR_REASON_ACCESS_DENIED: ConnectErrorReason
CONNECT_ERROR_REASON_AUTHORIZATION_ERROR: ConnectErrorReason
CONNECT_ERROR_REASON_MISSING_REALM: ConnectErrorReason
CONNECT_ERROR_REASON_CODE_EXCHANGE_FAILED: ConnectErrorReason
CONNECT_ERROR_REASON_REALM_IN_USE: ConnectErrorReason
CONNECT_ERROR_REASON_INTEGRATION_DISABLED: ConnectErrorReason
CONNECT_ERROR_REASON_INTERNAL_ERROR: ConnectErrorReason
BACKFILL_PHASE_UNSPECIFIED: BackfillPhase
BACKFILL_PHASE_NOT_STARTED: BackfillPhase
BACKFILL_PHASE_RUNNING: BackfillPhase
BACKFILL_PHASE_COMPLETED: BackfillPhase
BACKFILL_PHASE_FAILED: BackfillPhase
SYNC_MODE_UNSPECIFIED: SyncMode
SYNC_MODE_FULL: SyncMode
SYNC_MODE_INCREMENTAL: SyncMode
PLACEMENT_EXCLUSION_REASON_UNSPECIFIED: PlacementExclusionReason
PLACEMENT_EXCLUSION_REASON_TOO_FEW_DAYS_PAST_DUE: PlacementExclusionReason
PLACEMENT_EXCLUSION_REASON_BALANCE_BELOW_MINIMUM: PlacementExclusionReason
PLACEMENT_EXCLUSION_REASON_BALANCE_ABOVE_MAXIMUM: PlacementExclusionReason
PLACEMENT_EXCLUSION_REASON_CURRENCY_NOT_ALLOWED: PlacementExclusionReason
PLACEMENT_EXCLUSION_REASON_CUSTOMER_EXCLUDED: PlacementExclusionReason
PLACEMENT_EXCLUSION_REASON_CUSTOMER_NOT_INCLUDED: PlacementExclusionReason

class PlacementRules(_message.Message):
    __slots__ = ("min_days_past_due", "balance_limits", "currency_codes", "excluded_customer_ids", "included_customer_ids")
    MIN_DAYS_PAST_DUE_FIELD_NUMBER: _ClassVar[int]
    BALANCE_LIMITS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODES_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_CUSTOMER_IDS_FIELD_NUMBER: _ClassVar[int]
    INCLUDED_CUSTOMER_IDS_FIELD_NUMBER: _ClassVar[int]
    min_days_past_due: int
    balance_limits: _containers.RepeatedCompositeFieldContainer[BalanceLimit]
    currency_codes: _containers.RepeatedScalarFieldContainer[str]
    excluded_customer_ids: _containers.RepeatedScalarFieldContainer[str]
    included_customer_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, min_days_past_due: _Optional[int] = ..., balance_limits: _Optional[_Iterable[_Union[BalanceLimit, _Mapping]]] = ..., currency_codes: _Optional[_Iterable[str]] = ..., excluded_customer_ids: _Optional[_Iterable[str]] = ..., included_customer_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class BalanceLimit(_message.Message):
    __slots__ = ("currency_code", "min_balance_minor_units", "max_balance_minor_units")
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    MIN_BALANCE_MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    MAX_BALANCE_MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    currency_code: str
    min_balance_minor_units: int
    max_balance_minor_units: int
    def __init__(self, currency_code: _Optional[str] = ..., min_balance_minor_units: _Optional[int] = ..., max_balance_minor_units: _Optional[int] = ...) -> None: ...

class BackfillProgress(_message.Message):
    __slots__ = ("phase", "invoices_seen", "placements_created", "start_time", "finish_time", "last_error")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    INVOICES_SEEN_FIELD_NUMBER: _ClassVar[int]
    PLACEMENTS_CREATED_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    phase: BackfillPhase
    invoices_seen: int
    placements_created: int
    start_time: _timestamp_pb2.Timestamp
    finish_time: _timestamp_pb2.Timestamp
    last_error: str
    def __init__(self, phase: _Optional[_Union[BackfillPhase, str]] = ..., invoices_seen: _Optional[int] = ..., placements_created: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[str] = ...) -> None: ...

class SyncHealth(_message.Message):
    __slots__ = ("last_webhook_time", "last_cdc_poll_time", "inbox_backlog_count", "oldest_pending_age", "dead_letter_count")
    LAST_WEBHOOK_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_CDC_POLL_TIME_FIELD_NUMBER: _ClassVar[int]
    INBOX_BACKLOG_COUNT_FIELD_NUMBER: _ClassVar[int]
    OLDEST_PENDING_AGE_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_COUNT_FIELD_NUMBER: _ClassVar[int]
    last_webhook_time: _timestamp_pb2.Timestamp
    last_cdc_poll_time: _timestamp_pb2.Timestamp
    inbox_backlog_count: int
    oldest_pending_age: _duration_pb2.Duration
    dead_letter_count: int
    def __init__(self, last_webhook_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_cdc_poll_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., inbox_backlog_count: _Optional[int] = ..., oldest_pending_age: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., dead_letter_count: _Optional[int] = ...) -> None: ...

class CreateConnectUrlRequest(_message.Message):
    __slots__ = ("tenant_id", "actor")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    actor: str
    def __init__(self, tenant_id: _Optional[str] = ..., actor: _Optional[str] = ...) -> None: ...

class CreateConnectUrlResponse(_message.Message):
    __slots__ = ("authorize_url", "state_expire_time")
    AUTHORIZE_URL_FIELD_NUMBER: _ClassVar[int]
    STATE_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    authorize_url: str
    state_expire_time: _timestamp_pb2.Timestamp
    def __init__(self, authorize_url: _Optional[str] = ..., state_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CompleteConnectionRequest(_message.Message):
    __slots__ = ("state", "code", "realm_id", "error", "error_description")
    STATE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    REALM_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    state: str
    code: str
    realm_id: str
    error: str
    error_description: str
    def __init__(self, state: _Optional[str] = ..., code: _Optional[str] = ..., realm_id: _Optional[str] = ..., error: _Optional[str] = ..., error_description: _Optional[str] = ...) -> None: ...

class CompleteConnectionResponse(_message.Message):
    __slots__ = ("redirect_url", "connected", "error_reason", "error_code", "tenant_id", "realm_id", "company_name")
    REDIRECT_URL_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    ERROR_REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    REALM_ID_FIELD_NUMBER: _ClassVar[int]
    COMPANY_NAME_FIELD_NUMBER: _ClassVar[int]
    redirect_url: str
    connected: bool
    error_reason: ConnectErrorReason
    error_code: str
    tenant_id: str
    realm_id: str
    company_name: str
    def __init__(self, redirect_url: _Optional[str] = ..., connected: _Optional[bool] = ..., error_reason: _Optional[_Union[ConnectErrorReason, str]] = ..., error_code: _Optional[str] = ..., tenant_id: _Optional[str] = ..., realm_id: _Optional[str] = ..., company_name: _Optional[str] = ...) -> None: ...

class DisconnectRequest(_message.Message):
    __slots__ = ("tenant_id", "actor", "reason")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    actor: str
    reason: str
    def __init__(self, tenant_id: _Optional[str] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DisconnectResponse(_message.Message):
    __slots__ = ("state", "disconnect_time", "token_revocation", "revocation_detail")
    STATE_FIELD_NUMBER: _ClassVar[int]
    DISCONNECT_TIME_FIELD_NUMBER: _ClassVar[int]
    TOKEN_REVOCATION_FIELD_NUMBER: _ClassVar[int]
    REVOCATION_DETAIL_FIELD_NUMBER: _ClassVar[int]
    state: ConnectionState
    disconnect_time: _timestamp_pb2.Timestamp
    token_revocation: TokenRevocation
    revocation_detail: str
    def __init__(self, state: _Optional[_Union[ConnectionState, str]] = ..., disconnect_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., token_revocation: _Optional[_Union[TokenRevocation, str]] = ..., revocation_detail: _Optional[str] = ...) -> None: ...

class GetConnectionStatusRequest(_message.Message):
    __slots__ = ("tenant_id",)
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    def __init__(self, tenant_id: _Optional[str] = ...) -> None: ...

class GetConnectionStatusResponse(_message.Message):
    __slots__ = ("tenant_id", "state", "state_detail", "realm_id", "company_name", "connect_time", "disconnect_time", "disconnect_origin", "refresh_token_expire_time", "qbo_enabled", "qbo_kill_switch", "backfill", "sync")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_DETAIL_FIELD_NUMBER: _ClassVar[int]
    REALM_ID_FIELD_NUMBER: _ClassVar[int]
    COMPANY_NAME_FIELD_NUMBER: _ClassVar[int]
    CONNECT_TIME_FIELD_NUMBER: _ClassVar[int]
    DISCONNECT_TIME_FIELD_NUMBER: _ClassVar[int]
    DISCONNECT_ORIGIN_FIELD_NUMBER: _ClassVar[int]
    REFRESH_TOKEN_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    QBO_ENABLED_FIELD_NUMBER: _ClassVar[int]
    QBO_KILL_SWITCH_FIELD_NUMBER: _ClassVar[int]
    BACKFILL_FIELD_NUMBER: _ClassVar[int]
    SYNC_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    state: ConnectionState
    state_detail: str
    realm_id: str
    company_name: str
    connect_time: _timestamp_pb2.Timestamp
    disconnect_time: _timestamp_pb2.Timestamp
    disconnect_origin: DisconnectOrigin
    refresh_token_expire_time: _timestamp_pb2.Timestamp
    qbo_enabled: bool
    qbo_kill_switch: bool
    backfill: BackfillProgress
    sync: SyncHealth
    def __init__(self, tenant_id: _Optional[str] = ..., state: _Optional[_Union[ConnectionState, str]] = ..., state_detail: _Optional[str] = ..., realm_id: _Optional[str] = ..., company_name: _Optional[str] = ..., connect_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., disconnect_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., disconnect_origin: _Optional[_Union[DisconnectOrigin, str]] = ..., refresh_token_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., qbo_enabled: _Optional[bool] = ..., qbo_kill_switch: _Optional[bool] = ..., backfill: _Optional[_Union[BackfillProgress, _Mapping]] = ..., sync: _Optional[_Union[SyncHealth, _Mapping]] = ...) -> None: ...

class IngestWebhookRequest(_message.Message):
    __slots__ = ("body", "signature", "content_type", "receive_time")
    BODY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    RECEIVE_TIME_FIELD_NUMBER: _ClassVar[int]
    body: bytes
    signature: str
    content_type: str
    receive_time: _timestamp_pb2.Timestamp
    def __init__(self, body: _Optional[bytes] = ..., signature: _Optional[str] = ..., content_type: _Optional[str] = ..., receive_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class IngestWebhookResponse(_message.Message):
    __slots__ = ("stored_event_count", "duplicate_event_count", "dropped_event_count")
    STORED_EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    DROPPED_EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    stored_event_count: int
    duplicate_event_count: int
    dropped_event_count: int
    def __init__(self, stored_event_count: _Optional[int] = ..., duplicate_event_count: _Optional[int] = ..., dropped_event_count: _Optional[int] = ...) -> None: ...

class SyncNowRequest(_message.Message):
    __slots__ = ("tenant_id", "mode", "actor")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    mode: SyncMode
    actor: str
    def __init__(self, tenant_id: _Optional[str] = ..., mode: _Optional[_Union[SyncMode, str]] = ..., actor: _Optional[str] = ...) -> None: ...

class SyncNowResponse(_message.Message):
    __slots__ = ("started", "backfill")
    STARTED_FIELD_NUMBER: _ClassVar[int]
    BACKFILL_FIELD_NUMBER: _ClassVar[int]
    started: bool
    backfill: BackfillProgress
    def __init__(self, started: _Optional[bool] = ..., backfill: _Optional[_Union[BackfillProgress, _Mapping]] = ...) -> None: ...

class PreviewPlacementsRequest(_message.Message):
    __slots__ = ("tenant_id", "rules_override", "page_size", "page_token")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    RULES_OVERRIDE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    rules_override: PlacementRules
    page_size: int
    page_token: str
    def __init__(self, tenant_id: _Optional[str] = ..., rules_override: _Optional[_Union[PlacementRules, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class PlacementCandidate(_message.Message):
    __slots__ = ("qbo_invoice_id", "doc_number", "qbo_customer_id", "customer_display_name", "balance", "total_amount", "due_date", "days_past_due", "would_place", "exclusion_reason")
    QBO_INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    DOC_NUMBER_FIELD_NUMBER: _ClassVar[int]
    QBO_CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    DUE_DATE_FIELD_NUMBER: _ClassVar[int]
    DAYS_PAST_DUE_FIELD_NUMBER: _ClassVar[int]
    WOULD_PLACE_FIELD_NUMBER: _ClassVar[int]
    EXCLUSION_REASON_FIELD_NUMBER: _ClassVar[int]
    qbo_invoice_id: str
    doc_number: str
    qbo_customer_id: str
    customer_display_name: str
    balance: _money_pb2.Money
    total_amount: _money_pb2.Money
    due_date: str
    days_past_due: int
    would_place: bool
    exclusion_reason: PlacementExclusionReason
    def __init__(self, qbo_invoice_id: _Optional[str] = ..., doc_number: _Optional[str] = ..., qbo_customer_id: _Optional[str] = ..., customer_display_name: _Optional[str] = ..., balance: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., total_amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., due_date: _Optional[str] = ..., days_past_due: _Optional[int] = ..., would_place: _Optional[bool] = ..., exclusion_reason: _Optional[_Union[PlacementExclusionReason, str]] = ...) -> None: ...

class CurrencyTotal(_message.Message):
    __slots__ = ("currency_code", "candidate_count", "placed_count", "placed_balance_minor_units")
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_COUNT_FIELD_NUMBER: _ClassVar[int]
    PLACED_COUNT_FIELD_NUMBER: _ClassVar[int]
    PLACED_BALANCE_MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    currency_code: str
    candidate_count: int
    placed_count: int
    placed_balance_minor_units: int
    def __init__(self, currency_code: _Optional[str] = ..., candidate_count: _Optional[int] = ..., placed_count: _Optional[int] = ..., placed_balance_minor_units: _Optional[int] = ...) -> None: ...

class PreviewPlacementsResponse(_message.Message):
    __slots__ = ("candidates", "next_page_token", "totals", "company_date", "rules")
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    COMPANY_DATE_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[PlacementCandidate]
    next_page_token: str
    totals: _containers.RepeatedCompositeFieldContainer[CurrencyTotal]
    company_date: str
    rules: PlacementRules
    def __init__(self, candidates: _Optional[_Iterable[_Union[PlacementCandidate, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., totals: _Optional[_Iterable[_Union[CurrencyTotal, _Mapping]]] = ..., company_date: _Optional[str] = ..., rules: _Optional[_Union[PlacementRules, _Mapping]] = ...) -> None: ...

class GetPlacementRulesRequest(_message.Message):
    __slots__ = ("tenant_id",)
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    def __init__(self, tenant_id: _Optional[str] = ...) -> None: ...

class GetPlacementRulesResponse(_message.Message):
    __slots__ = ("rules", "version", "update_time", "update_actor")
    RULES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_ACTOR_FIELD_NUMBER: _ClassVar[int]
    rules: PlacementRules
    version: int
    update_time: _timestamp_pb2.Timestamp
    update_actor: str
    def __init__(self, rules: _Optional[_Union[PlacementRules, _Mapping]] = ..., version: _Optional[int] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_actor: _Optional[str] = ...) -> None: ...

class SetPlacementRulesRequest(_message.Message):
    __slots__ = ("tenant_id", "rules", "expected_version", "actor", "reason")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    rules: PlacementRules
    expected_version: int
    actor: str
    reason: str
    def __init__(self, tenant_id: _Optional[str] = ..., rules: _Optional[_Union[PlacementRules, _Mapping]] = ..., expected_version: _Optional[int] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class SetPlacementRulesResponse(_message.Message):
    __slots__ = ("rules", "version", "update_time")
    RULES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    rules: PlacementRules
    version: int
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, rules: _Optional[_Union[PlacementRules, _Mapping]] = ..., version: _Optional[int] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

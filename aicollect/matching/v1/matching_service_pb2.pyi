import datetime

from aicollect.type.v1 import money_pb2 as _money_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PlacementStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PLACEMENT_STATUS_UNSPECIFIED: _ClassVar[PlacementStatus]
    PLACEMENT_STATUS_ACTIVE: _ClassVar[PlacementStatus]
    PLACEMENT_STATUS_PAUSED_PENDING_REVIEW: _ClassVar[PlacementStatus]
    PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND: _ClassVar[PlacementStatus]
    PLACEMENT_STATUS_RESOLVED_PAID_PORTAL: _ClassVar[PlacementStatus]
    PLACEMENT_STATUS_CLOSED: _ClassVar[PlacementStatus]
    PLACEMENT_STATUS_NEEDS_REVIEW: _ClassVar[PlacementStatus]

class IntakeChannel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INTAKE_CHANNEL_UNSPECIFIED: _ClassVar[IntakeChannel]
    INTAKE_CHANNEL_ACCOUNTING_SYNC: _ClassVar[IntakeChannel]
    INTAKE_CHANNEL_MANUAL: _ClassVar[IntakeChannel]
    INTAKE_CHANNEL_CSV: _ClassVar[IntakeChannel]

class QboEntityState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QBO_ENTITY_STATE_UNSPECIFIED: _ClassVar[QboEntityState]
    QBO_ENTITY_STATE_ACTIVE: _ClassVar[QboEntityState]
    QBO_ENTITY_STATE_VOIDED: _ClassVar[QboEntityState]
    QBO_ENTITY_STATE_DELETED: _ClassVar[QboEntityState]

class LinkedTxnType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LINKED_TXN_TYPE_UNSPECIFIED: _ClassVar[LinkedTxnType]
    LINKED_TXN_TYPE_INVOICE: _ClassVar[LinkedTxnType]
    LINKED_TXN_TYPE_CREDIT_MEMO: _ClassVar[LinkedTxnType]
    LINKED_TXN_TYPE_PAYMENT: _ClassVar[LinkedTxnType]
    LINKED_TXN_TYPE_JOURNAL_ENTRY: _ClassVar[LinkedTxnType]
    LINKED_TXN_TYPE_OTHER: _ClassVar[LinkedTxnType]

class ChangeSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANGE_SOURCE_UNSPECIFIED: _ClassVar[ChangeSource]
    CHANGE_SOURCE_WEBHOOK: _ClassVar[ChangeSource]
    CHANGE_SOURCE_CDC: _ClassVar[ChangeSource]
    CHANGE_SOURCE_BACKFILL: _ClassVar[ChangeSource]
    CHANGE_SOURCE_REPLAY: _ClassVar[ChangeSource]

class DecisionOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_OUTCOME_UNSPECIFIED: _ClassVar[DecisionOutcome]
    DECISION_OUTCOME_RESOLVED_OUT_OF_BAND: _ClassVar[DecisionOutcome]
    DECISION_OUTCOME_PARTIAL_PAYMENT: _ClassVar[DecisionOutcome]
    DECISION_OUTCOME_MIRRORS_PORTAL_PAYMENT: _ClassVar[DecisionOutcome]
    DECISION_OUTCOME_DUPLICATE_NO_CHANGE: _ClassVar[DecisionOutcome]
    DECISION_OUTCOME_EDIT_DIFFERENCE_APPLIED: _ClassVar[DecisionOutcome]
    DECISION_OUTCOME_FLAGGED_FOR_REVIEW: _ClassVar[DecisionOutcome]
    DECISION_OUTCOME_PAUSED_UNAPPLIED_PAYMENT: _ClassVar[DecisionOutcome]
    DECISION_OUTCOME_CLOSED_BALANCE_ZERO: _ClassVar[DecisionOutcome]
    DECISION_OUTCOME_PAUSED_INVOICE_VOIDED: _ClassVar[DecisionOutcome]
    DECISION_OUTCOME_PAUSED_CURRENCY_MISMATCH: _ClassVar[DecisionOutcome]
    DECISION_OUTCOME_EXCLUDED_AFTER_RESTORE: _ClassVar[DecisionOutcome]
    DECISION_OUTCOME_NO_PLACEMENT: _ClassVar[DecisionOutcome]
    DECISION_OUTCOME_BALANCE_UPDATED: _ClassVar[DecisionOutcome]
    DECISION_OUTCOME_RESOLVED_PAID_PORTAL: _ClassVar[DecisionOutcome]

class UpsertOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UPSERT_OUTCOME_UNSPECIFIED: _ClassVar[UpsertOutcome]
    UPSERT_OUTCOME_CREATED: _ClassVar[UpsertOutcome]
    UPSERT_OUTCOME_UPDATED: _ClassVar[UpsertOutcome]
    UPSERT_OUTCOME_UNCHANGED: _ClassVar[UpsertOutcome]

class OutreachEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTREACH_EVENT_TYPE_UNSPECIFIED: _ClassVar[OutreachEventType]
    OUTREACH_EVENT_TYPE_STOP: _ClassVar[OutreachEventType]
    OUTREACH_EVENT_TYPE_PAUSE: _ClassVar[OutreachEventType]
    OUTREACH_EVENT_TYPE_RESUME: _ClassVar[OutreachEventType]
    OUTREACH_EVENT_TYPE_BALANCE_CHANGED: _ClassVar[OutreachEventType]

class PhoneType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PHONE_TYPE_UNSPECIFIED: _ClassVar[PhoneType]
    PHONE_TYPE_PRIMARY: _ClassVar[PhoneType]
    PHONE_TYPE_MOBILE: _ClassVar[PhoneType]
    PHONE_TYPE_ALTERNATE: _ClassVar[PhoneType]
    PHONE_TYPE_FAX: _ClassVar[PhoneType]

class OutOfBandFeeTreatment(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUT_OF_BAND_FEE_TREATMENT_UNSPECIFIED: _ClassVar[OutOfBandFeeTreatment]
    OUT_OF_BAND_FEE_TREATMENT_FULL: _ClassVar[OutOfBandFeeTreatment]
    OUT_OF_BAND_FEE_TREATMENT_REDUCED: _ClassVar[OutOfBandFeeTreatment]
    OUT_OF_BAND_FEE_TREATMENT_WAIVED: _ClassVar[OutOfBandFeeTreatment]
PLACEMENT_STATUS_UNSPECIFIED: PlacementStatus
PLACEMENT_STATUS_ACTIVE: PlacementStatus
PLACEMENT_STATUS_PAUSED_PENDING_REVIEW: PlacementStatus
PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND: PlacementStatus
PLACEMENT_STATUS_RESOLVED_PAID_PORTAL: PlacementStatus
PLACEMENT_STATUS_CLOSED: PlacementStatus
PLACEMENT_STATUS_NEEDS_REVIEW: PlacementStatus
INTAKE_CHANNEL_UNSPECIFIED: IntakeChannel
INTAKE_CHANNEL_ACCOUNTING_SYNC: IntakeChannel
INTAKE_CHANNEL_MANUAL: IntakeChannel
INTAKE_CHANNEL_CSV: IntakeChannel
QBO_ENTITY_STATE_UNSPECIFIED: QboEntityState
QBO_ENTITY_STATE_ACTIVE: QboEntityState
QBO_ENTITY_STATE_VOIDED: QboEntityState
QBO_ENTITY_STATE_DELETED: QboEntityState
LINKED_TXN_TYPE_UNSPECIFIED: LinkedTxnType
LINKED_TXN_TYPE_INVOICE: LinkedTxnType
LINKED_TXN_TYPE_CREDIT_MEMO: LinkedTxnType
LINKED_TXN_TYPE_PAYMENT: LinkedTxnType
LINKED_TXN_TYPE_JOURNAL_ENTRY: LinkedTxnType
LINKED_TXN_TYPE_OTHER: LinkedTxnType
CHANGE_SOURCE_UNSPECIFIED: ChangeSource
CHANGE_SOURCE_WEBHOOK: ChangeSource
CHANGE_SOURCE_CDC: ChangeSource
CHANGE_SOURCE_BACKFILL: ChangeSource
CHANGE_SOURCE_REPLAY: ChangeSource
DECISION_OUTCOME_UNSPECIFIED: DecisionOutcome
DECISION_OUTCOME_RESOLVED_OUT_OF_BAND: DecisionOutcome
DECISION_OUTCOME_PARTIAL_PAYMENT: DecisionOutcome
DECISION_OUTCOME_MIRRORS_PORTAL_PAYMENT: DecisionOutcome
DECISION_OUTCOME_DUPLICATE_NO_CHANGE: DecisionOutcome
DECISION_OUTCOME_EDIT_DIFFERENCE_APPLIED: DecisionOutcome
DECISION_OUTCOME_FLAGGED_FOR_REVIEW: DecisionOutcome
DECISION_OUTCOME_PAUSED_UNAPPLIED_PAYMENT: DecisionOutcome
DECISION_OUTCOME_CLOSED_BALANCE_ZERO: DecisionOutcome
DECISION_OUTCOME_PAUSED_INVOICE_VOIDED: DecisionOutcome
DECISION_OUTCOME_PAUSED_CURRENCY_MISMATCH: DecisionOutcome
DECISION_OUTCOME_EXCLUDED_AFTER_RESTORE: DecisionOutcome
DECISION_OUTCOME_NO_PLACEMENT: DecisionOutcome
DECISION_OUTCOME_BALANCE_UPDATED: DecisionOutcome
DECISION_OUTCOME_RESOLVED_PAID_PORTAL: DecisionOutcome
UPSERT_OUTCOME_UNSPECIFIED: UpsertOutcome
UPSERT_OUTCOME_CREATED: UpsertOutcome
UPSERT_OUTCOME_UPDATED: UpsertOutcome
UPSERT_OUTCOME_UNCHANGED: UpsertOutcome
OUTREACH_EVENT_TYPE_UNSPECIFIED: OutreachEventType
OUTREACH_EVENT_TYPE_STOP: OutreachEventType
OUTREACH_EVENT_TYPE_PAUSE: OutreachEventType
OUTREACH_EVENT_TYPE_RESUME: OutreachEventType
OUTREACH_EVENT_TYPE_BALANCE_CHANGED: OutreachEventType
PHONE_TYPE_UNSPECIFIED: PhoneType
PHONE_TYPE_PRIMARY: PhoneType
PHONE_TYPE_MOBILE: PhoneType
PHONE_TYPE_ALTERNATE: PhoneType
PHONE_TYPE_FAX: PhoneType
OUT_OF_BAND_FEE_TREATMENT_UNSPECIFIED: OutOfBandFeeTreatment
OUT_OF_BAND_FEE_TREATMENT_FULL: OutOfBandFeeTreatment
OUT_OF_BAND_FEE_TREATMENT_REDUCED: OutOfBandFeeTreatment
OUT_OF_BAND_FEE_TREATMENT_WAIVED: OutOfBandFeeTreatment

class Placement(_message.Message):
    __slots__ = ("placement_id", "tenant_id", "realm_id", "qbo_invoice_id", "doc_number", "qbo_customer_id", "debtor", "original_amount", "balance", "invoice_date", "due_date", "status", "resolution_reason", "review_reason", "resolving_qbo_payment_id", "intake_channel", "version", "create_time", "update_time", "resolve_time")
    PLACEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    REALM_ID_FIELD_NUMBER: _ClassVar[int]
    QBO_INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    DOC_NUMBER_FIELD_NUMBER: _ClassVar[int]
    QBO_CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    DEBTOR_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    INVOICE_DATE_FIELD_NUMBER: _ClassVar[int]
    DUE_DATE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_REASON_FIELD_NUMBER: _ClassVar[int]
    REVIEW_REASON_FIELD_NUMBER: _ClassVar[int]
    RESOLVING_QBO_PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    INTAKE_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    RESOLVE_TIME_FIELD_NUMBER: _ClassVar[int]
    placement_id: str
    tenant_id: str
    realm_id: str
    qbo_invoice_id: str
    doc_number: str
    qbo_customer_id: str
    debtor: DebtorContact
    original_amount: _money_pb2.Money
    balance: _money_pb2.Money
    invoice_date: str
    due_date: str
    status: PlacementStatus
    resolution_reason: str
    review_reason: str
    resolving_qbo_payment_id: str
    intake_channel: IntakeChannel
    version: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    resolve_time: _timestamp_pb2.Timestamp
    def __init__(self, placement_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., realm_id: _Optional[str] = ..., qbo_invoice_id: _Optional[str] = ..., doc_number: _Optional[str] = ..., qbo_customer_id: _Optional[str] = ..., debtor: _Optional[_Union[DebtorContact, _Mapping]] = ..., original_amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., balance: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., invoice_date: _Optional[str] = ..., due_date: _Optional[str] = ..., status: _Optional[_Union[PlacementStatus, str]] = ..., resolution_reason: _Optional[str] = ..., review_reason: _Optional[str] = ..., resolving_qbo_payment_id: _Optional[str] = ..., intake_channel: _Optional[_Union[IntakeChannel, str]] = ..., version: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resolve_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DebtorContact(_message.Message):
    __slots__ = ("display_name", "company_name", "given_name", "family_name", "email", "phones", "billing_address")
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    COMPANY_NAME_FIELD_NUMBER: _ClassVar[int]
    GIVEN_NAME_FIELD_NUMBER: _ClassVar[int]
    FAMILY_NAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    PHONES_FIELD_NUMBER: _ClassVar[int]
    BILLING_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    display_name: str
    company_name: str
    given_name: str
    family_name: str
    email: str
    phones: _containers.RepeatedCompositeFieldContainer[PhoneNumber]
    billing_address: PostalAddress
    def __init__(self, display_name: _Optional[str] = ..., company_name: _Optional[str] = ..., given_name: _Optional[str] = ..., family_name: _Optional[str] = ..., email: _Optional[str] = ..., phones: _Optional[_Iterable[_Union[PhoneNumber, _Mapping]]] = ..., billing_address: _Optional[_Union[PostalAddress, _Mapping]] = ...) -> None: ...

class PhoneNumber(_message.Message):
    __slots__ = ("type", "number")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    type: PhoneType
    number: str
    def __init__(self, type: _Optional[_Union[PhoneType, str]] = ..., number: _Optional[str] = ...) -> None: ...

class PostalAddress(_message.Message):
    __slots__ = ("lines", "city", "region", "postal_code", "country")
    LINES_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    POSTAL_CODE_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedScalarFieldContainer[str]
    city: str
    region: str
    postal_code: str
    country: str
    def __init__(self, lines: _Optional[_Iterable[str]] = ..., city: _Optional[str] = ..., region: _Optional[str] = ..., postal_code: _Optional[str] = ..., country: _Optional[str] = ...) -> None: ...

class PlacementInput(_message.Message):
    __slots__ = ("qbo_invoice_id", "doc_number", "qbo_customer_id", "debtor", "total_amount", "balance", "invoice_date", "due_date", "sync_token", "last_updated_time")
    QBO_INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    DOC_NUMBER_FIELD_NUMBER: _ClassVar[int]
    QBO_CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    DEBTOR_FIELD_NUMBER: _ClassVar[int]
    TOTAL_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    INVOICE_DATE_FIELD_NUMBER: _ClassVar[int]
    DUE_DATE_FIELD_NUMBER: _ClassVar[int]
    SYNC_TOKEN_FIELD_NUMBER: _ClassVar[int]
    LAST_UPDATED_TIME_FIELD_NUMBER: _ClassVar[int]
    qbo_invoice_id: str
    doc_number: str
    qbo_customer_id: str
    debtor: DebtorContact
    total_amount: _money_pb2.Money
    balance: _money_pb2.Money
    invoice_date: str
    due_date: str
    sync_token: str
    last_updated_time: _timestamp_pb2.Timestamp
    def __init__(self, qbo_invoice_id: _Optional[str] = ..., doc_number: _Optional[str] = ..., qbo_customer_id: _Optional[str] = ..., debtor: _Optional[_Union[DebtorContact, _Mapping]] = ..., total_amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., balance: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., invoice_date: _Optional[str] = ..., due_date: _Optional[str] = ..., sync_token: _Optional[str] = ..., last_updated_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UpsertResult(_message.Message):
    __slots__ = ("qbo_invoice_id", "placement_id", "outcome")
    QBO_INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    qbo_invoice_id: str
    placement_id: str
    outcome: UpsertOutcome
    def __init__(self, qbo_invoice_id: _Optional[str] = ..., placement_id: _Optional[str] = ..., outcome: _Optional[_Union[UpsertOutcome, str]] = ...) -> None: ...

class QboPayment(_message.Message):
    __slots__ = ("qbo_payment_id", "sync_token", "txn_date", "total_amount", "unapplied_amount", "qbo_customer_id", "lines", "state", "create_time", "last_updated_time")
    QBO_PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SYNC_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TXN_DATE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    UNAPPLIED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    QBO_CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_UPDATED_TIME_FIELD_NUMBER: _ClassVar[int]
    qbo_payment_id: str
    sync_token: str
    txn_date: str
    total_amount: _money_pb2.Money
    unapplied_amount: _money_pb2.Money
    qbo_customer_id: str
    lines: _containers.RepeatedCompositeFieldContainer[PaymentLine]
    state: QboEntityState
    create_time: _timestamp_pb2.Timestamp
    last_updated_time: _timestamp_pb2.Timestamp
    def __init__(self, qbo_payment_id: _Optional[str] = ..., sync_token: _Optional[str] = ..., txn_date: _Optional[str] = ..., total_amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., unapplied_amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., qbo_customer_id: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[PaymentLine, _Mapping]]] = ..., state: _Optional[_Union[QboEntityState, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_updated_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PaymentLine(_message.Message):
    __slots__ = ("linked_txn_id", "linked_txn_type", "amount")
    LINKED_TXN_ID_FIELD_NUMBER: _ClassVar[int]
    LINKED_TXN_TYPE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    linked_txn_id: str
    linked_txn_type: LinkedTxnType
    amount: _money_pb2.Money
    def __init__(self, linked_txn_id: _Optional[str] = ..., linked_txn_type: _Optional[_Union[LinkedTxnType, str]] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class LinkedTxn(_message.Message):
    __slots__ = ("txn_id", "txn_type")
    TXN_ID_FIELD_NUMBER: _ClassVar[int]
    TXN_TYPE_FIELD_NUMBER: _ClassVar[int]
    txn_id: str
    txn_type: LinkedTxnType
    def __init__(self, txn_id: _Optional[str] = ..., txn_type: _Optional[_Union[LinkedTxnType, str]] = ...) -> None: ...

class QboInvoice(_message.Message):
    __slots__ = ("qbo_invoice_id", "sync_token", "doc_number", "total_amount", "balance", "due_date", "qbo_customer_id", "state", "last_updated_time", "linked_txns")
    QBO_INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    SYNC_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DOC_NUMBER_FIELD_NUMBER: _ClassVar[int]
    TOTAL_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    DUE_DATE_FIELD_NUMBER: _ClassVar[int]
    QBO_CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LAST_UPDATED_TIME_FIELD_NUMBER: _ClassVar[int]
    LINKED_TXNS_FIELD_NUMBER: _ClassVar[int]
    qbo_invoice_id: str
    sync_token: str
    doc_number: str
    total_amount: _money_pb2.Money
    balance: _money_pb2.Money
    due_date: str
    qbo_customer_id: str
    state: QboEntityState
    last_updated_time: _timestamp_pb2.Timestamp
    linked_txns: _containers.RepeatedCompositeFieldContainer[LinkedTxn]
    def __init__(self, qbo_invoice_id: _Optional[str] = ..., sync_token: _Optional[str] = ..., doc_number: _Optional[str] = ..., total_amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., balance: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., due_date: _Optional[str] = ..., qbo_customer_id: _Optional[str] = ..., state: _Optional[_Union[QboEntityState, str]] = ..., last_updated_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., linked_txns: _Optional[_Iterable[_Union[LinkedTxn, _Mapping]]] = ...) -> None: ...

class PlacementDecision(_message.Message):
    __slots__ = ("placement_id", "qbo_invoice_id", "outcome", "status", "balance", "applied_amount", "outreach_event_type", "detail")
    PLACEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    QBO_INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    APPLIED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    OUTREACH_EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    placement_id: str
    qbo_invoice_id: str
    outcome: DecisionOutcome
    status: PlacementStatus
    balance: _money_pb2.Money
    applied_amount: _money_pb2.Money
    outreach_event_type: OutreachEventType
    detail: str
    def __init__(self, placement_id: _Optional[str] = ..., qbo_invoice_id: _Optional[str] = ..., outcome: _Optional[_Union[DecisionOutcome, str]] = ..., status: _Optional[_Union[PlacementStatus, str]] = ..., balance: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., applied_amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., outreach_event_type: _Optional[_Union[OutreachEventType, str]] = ..., detail: _Optional[str] = ...) -> None: ...

class OutreachEvent(_message.Message):
    __slots__ = ("cursor", "event_id", "placement_id", "tenant_id", "type", "status", "balance", "reason", "create_time")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    event_id: str
    placement_id: str
    tenant_id: str
    type: OutreachEventType
    status: PlacementStatus
    balance: _money_pb2.Money
    reason: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, cursor: _Optional[str] = ..., event_id: _Optional[str] = ..., placement_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., type: _Optional[_Union[OutreachEventType, str]] = ..., status: _Optional[_Union[PlacementStatus, str]] = ..., balance: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., reason: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AuditEvent(_message.Message):
    __slots__ = ("event_id", "tenant_id", "placement_id", "actor", "action", "reason", "details", "create_time")
    class DetailsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    tenant_id: str
    placement_id: str
    actor: str
    action: str
    reason: str
    details: _containers.ScalarMap[str, str]
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, event_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., placement_id: _Optional[str] = ..., actor: _Optional[str] = ..., action: _Optional[str] = ..., reason: _Optional[str] = ..., details: _Optional[_Mapping[str, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class FeeTerms(_message.Message):
    __slots__ = ("contingency_fee_basis_points", "out_of_band_fee_treatment", "out_of_band_fee_basis_points")
    CONTINGENCY_FEE_BASIS_POINTS_FIELD_NUMBER: _ClassVar[int]
    OUT_OF_BAND_FEE_TREATMENT_FIELD_NUMBER: _ClassVar[int]
    OUT_OF_BAND_FEE_BASIS_POINTS_FIELD_NUMBER: _ClassVar[int]
    contingency_fee_basis_points: int
    out_of_band_fee_treatment: OutOfBandFeeTreatment
    out_of_band_fee_basis_points: int
    def __init__(self, contingency_fee_basis_points: _Optional[int] = ..., out_of_band_fee_treatment: _Optional[_Union[OutOfBandFeeTreatment, str]] = ..., out_of_band_fee_basis_points: _Optional[int] = ...) -> None: ...

class PortalPaymentEntry(_message.Message):
    __slots__ = ("portal_payment_id", "placement_id", "qbo_invoice_id", "doc_number", "pay_time", "amount_minor_units", "fee_minor_units", "net_minor_units")
    PORTAL_PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    QBO_INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    DOC_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PAY_TIME_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    FEE_MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    NET_MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    portal_payment_id: str
    placement_id: str
    qbo_invoice_id: str
    doc_number: str
    pay_time: _timestamp_pb2.Timestamp
    amount_minor_units: int
    fee_minor_units: int
    net_minor_units: int
    def __init__(self, portal_payment_id: _Optional[str] = ..., placement_id: _Optional[str] = ..., qbo_invoice_id: _Optional[str] = ..., doc_number: _Optional[str] = ..., pay_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., amount_minor_units: _Optional[int] = ..., fee_minor_units: _Optional[int] = ..., net_minor_units: _Optional[int] = ...) -> None: ...

class OutOfBandResolutionEntry(_message.Message):
    __slots__ = ("placement_id", "qbo_invoice_id", "doc_number", "qbo_payment_id", "resolve_time", "amount_minor_units", "fee_treatment", "fee_minor_units", "restored")
    PLACEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    QBO_INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    DOC_NUMBER_FIELD_NUMBER: _ClassVar[int]
    QBO_PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    RESOLVE_TIME_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    FEE_TREATMENT_FIELD_NUMBER: _ClassVar[int]
    FEE_MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    RESTORED_FIELD_NUMBER: _ClassVar[int]
    placement_id: str
    qbo_invoice_id: str
    doc_number: str
    qbo_payment_id: str
    resolve_time: _timestamp_pb2.Timestamp
    amount_minor_units: int
    fee_treatment: OutOfBandFeeTreatment
    fee_minor_units: int
    restored: bool
    def __init__(self, placement_id: _Optional[str] = ..., qbo_invoice_id: _Optional[str] = ..., doc_number: _Optional[str] = ..., qbo_payment_id: _Optional[str] = ..., resolve_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., amount_minor_units: _Optional[int] = ..., fee_treatment: _Optional[_Union[OutOfBandFeeTreatment, str]] = ..., fee_minor_units: _Optional[int] = ..., restored: _Optional[bool] = ...) -> None: ...

class ReconciliationTotals(_message.Message):
    __slots__ = ("portal_payment_count", "portal_amount_minor_units", "portal_fee_minor_units", "portal_net_minor_units", "out_of_band_resolution_count", "out_of_band_amount_minor_units", "out_of_band_fee_minor_units", "total_fee_minor_units")
    PORTAL_PAYMENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    PORTAL_AMOUNT_MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    PORTAL_FEE_MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    PORTAL_NET_MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    OUT_OF_BAND_RESOLUTION_COUNT_FIELD_NUMBER: _ClassVar[int]
    OUT_OF_BAND_AMOUNT_MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    OUT_OF_BAND_FEE_MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FEE_MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    portal_payment_count: int
    portal_amount_minor_units: int
    portal_fee_minor_units: int
    portal_net_minor_units: int
    out_of_band_resolution_count: int
    out_of_band_amount_minor_units: int
    out_of_band_fee_minor_units: int
    total_fee_minor_units: int
    def __init__(self, portal_payment_count: _Optional[int] = ..., portal_amount_minor_units: _Optional[int] = ..., portal_fee_minor_units: _Optional[int] = ..., portal_net_minor_units: _Optional[int] = ..., out_of_band_resolution_count: _Optional[int] = ..., out_of_band_amount_minor_units: _Optional[int] = ..., out_of_band_fee_minor_units: _Optional[int] = ..., total_fee_minor_units: _Optional[int] = ...) -> None: ...

class CurrencyReconciliation(_message.Message):
    __slots__ = ("currency_code", "portal_payments", "out_of_band_resolutions", "totals")
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    PORTAL_PAYMENTS_FIELD_NUMBER: _ClassVar[int]
    OUT_OF_BAND_RESOLUTIONS_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    currency_code: str
    portal_payments: _containers.RepeatedCompositeFieldContainer[PortalPaymentEntry]
    out_of_band_resolutions: _containers.RepeatedCompositeFieldContainer[OutOfBandResolutionEntry]
    totals: ReconciliationTotals
    def __init__(self, currency_code: _Optional[str] = ..., portal_payments: _Optional[_Iterable[_Union[PortalPaymentEntry, _Mapping]]] = ..., out_of_band_resolutions: _Optional[_Iterable[_Union[OutOfBandResolutionEntry, _Mapping]]] = ..., totals: _Optional[_Union[ReconciliationTotals, _Mapping]] = ...) -> None: ...

class UpsertPlacementsRequest(_message.Message):
    __slots__ = ("tenant_id", "realm_id", "placements")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    REALM_ID_FIELD_NUMBER: _ClassVar[int]
    PLACEMENTS_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    realm_id: str
    placements: _containers.RepeatedCompositeFieldContainer[PlacementInput]
    def __init__(self, tenant_id: _Optional[str] = ..., realm_id: _Optional[str] = ..., placements: _Optional[_Iterable[_Union[PlacementInput, _Mapping]]] = ...) -> None: ...

class UpsertPlacementsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[UpsertResult]
    def __init__(self, results: _Optional[_Iterable[_Union[UpsertResult, _Mapping]]] = ...) -> None: ...

class ApplyAccountingPaymentRequest(_message.Message):
    __slots__ = ("tenant_id", "realm_id", "payment", "source", "source_event_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    REALM_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    realm_id: str
    payment: QboPayment
    source: ChangeSource
    source_event_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., realm_id: _Optional[str] = ..., payment: _Optional[_Union[QboPayment, _Mapping]] = ..., source: _Optional[_Union[ChangeSource, str]] = ..., source_event_id: _Optional[str] = ...) -> None: ...

class ApplyAccountingPaymentResponse(_message.Message):
    __slots__ = ("decisions",)
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    decisions: _containers.RepeatedCompositeFieldContainer[PlacementDecision]
    def __init__(self, decisions: _Optional[_Iterable[_Union[PlacementDecision, _Mapping]]] = ...) -> None: ...

class ApplyAccountingInvoiceRequest(_message.Message):
    __slots__ = ("tenant_id", "realm_id", "invoice", "source", "source_event_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    REALM_ID_FIELD_NUMBER: _ClassVar[int]
    INVOICE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    realm_id: str
    invoice: QboInvoice
    source: ChangeSource
    source_event_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., realm_id: _Optional[str] = ..., invoice: _Optional[_Union[QboInvoice, _Mapping]] = ..., source: _Optional[_Union[ChangeSource, str]] = ..., source_event_id: _Optional[str] = ...) -> None: ...

class ApplyAccountingInvoiceResponse(_message.Message):
    __slots__ = ("decisions",)
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    decisions: _containers.RepeatedCompositeFieldContainer[PlacementDecision]
    def __init__(self, decisions: _Optional[_Iterable[_Union[PlacementDecision, _Mapping]]] = ...) -> None: ...

class RecordPortalPaymentRequest(_message.Message):
    __slots__ = ("placement_id", "portal_payment_id", "amount", "pay_time", "fee_amount")
    PLACEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PORTAL_PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PAY_TIME_FIELD_NUMBER: _ClassVar[int]
    FEE_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    placement_id: str
    portal_payment_id: str
    amount: _money_pb2.Money
    pay_time: _timestamp_pb2.Timestamp
    fee_amount: _money_pb2.Money
    def __init__(self, placement_id: _Optional[str] = ..., portal_payment_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., pay_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fee_amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class RecordPortalPaymentResponse(_message.Message):
    __slots__ = ("decision", "placement")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    decision: PlacementDecision
    placement: Placement
    def __init__(self, decision: _Optional[_Union[PlacementDecision, _Mapping]] = ..., placement: _Optional[_Union[Placement, _Mapping]] = ...) -> None: ...

class GetPlacementRequest(_message.Message):
    __slots__ = ("placement_id",)
    PLACEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    placement_id: str
    def __init__(self, placement_id: _Optional[str] = ...) -> None: ...

class GetPlacementResponse(_message.Message):
    __slots__ = ("placement",)
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    placement: Placement
    def __init__(self, placement: _Optional[_Union[Placement, _Mapping]] = ...) -> None: ...

class ListPlacementsRequest(_message.Message):
    __slots__ = ("tenant_id", "statuses", "realm_id", "qbo_invoice_id", "page_size", "page_token")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    REALM_ID_FIELD_NUMBER: _ClassVar[int]
    QBO_INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    statuses: _containers.RepeatedScalarFieldContainer[PlacementStatus]
    realm_id: str
    qbo_invoice_id: str
    page_size: int
    page_token: str
    def __init__(self, tenant_id: _Optional[str] = ..., statuses: _Optional[_Iterable[_Union[PlacementStatus, str]]] = ..., realm_id: _Optional[str] = ..., qbo_invoice_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPlacementsResponse(_message.Message):
    __slots__ = ("placements", "next_page_token")
    PLACEMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    placements: _containers.RepeatedCompositeFieldContainer[Placement]
    next_page_token: str
    def __init__(self, placements: _Optional[_Iterable[_Union[Placement, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RestorePlacementRequest(_message.Message):
    __slots__ = ("placement_id", "expected_version", "actor", "reason")
    PLACEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    placement_id: str
    expected_version: int
    actor: str
    reason: str
    def __init__(self, placement_id: _Optional[str] = ..., expected_version: _Optional[int] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RestorePlacementResponse(_message.Message):
    __slots__ = ("placement",)
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    placement: Placement
    def __init__(self, placement: _Optional[_Union[Placement, _Mapping]] = ...) -> None: ...

class StreamOutreachEventsRequest(_message.Message):
    __slots__ = ("cursor", "tenant_id")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    tenant_id: str
    def __init__(self, cursor: _Optional[str] = ..., tenant_id: _Optional[str] = ...) -> None: ...

class StreamOutreachEventsResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: OutreachEvent
    def __init__(self, event: _Optional[_Union[OutreachEvent, _Mapping]] = ...) -> None: ...

class ListAuditEventsRequest(_message.Message):
    __slots__ = ("tenant_id", "placement_id", "page_size", "page_token")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    placement_id: str
    page_size: int
    page_token: str
    def __init__(self, tenant_id: _Optional[str] = ..., placement_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAuditEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[AuditEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[AuditEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetReconciliationReportRequest(_message.Message):
    __slots__ = ("tenant_id", "day", "time_zone", "fee_terms")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    DAY_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    FEE_TERMS_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    day: str
    time_zone: str
    fee_terms: FeeTerms
    def __init__(self, tenant_id: _Optional[str] = ..., day: _Optional[str] = ..., time_zone: _Optional[str] = ..., fee_terms: _Optional[_Union[FeeTerms, _Mapping]] = ...) -> None: ...

class GetReconciliationReportResponse(_message.Message):
    __slots__ = ("tenant_id", "day", "time_zone", "start_time", "end_time", "currencies")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    DAY_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    CURRENCIES_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    day: str
    time_zone: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    currencies: _containers.RepeatedCompositeFieldContainer[CurrencyReconciliation]
    def __init__(self, tenant_id: _Optional[str] = ..., day: _Optional[str] = ..., time_zone: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., currencies: _Optional[_Iterable[_Union[CurrencyReconciliation, _Mapping]]] = ...) -> None: ...

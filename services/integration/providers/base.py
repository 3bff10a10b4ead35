"""The seam between the integration core and one accounting platform.

The core (connections and sealed tokens, the refresh lock, the webhook inbox, request
budgets, the sync scheduler, placement rules, status) is written once. What differs per
platform -- OAuth endpoints and scopes, the API client and its errors, webhook formats
and signatures, change data capture, backfill queries, the mapping of its JSON to
accounting facts -- sits behind :class:`AccountingPlatform`, one package per platform
(``providers/qbo/``). The types here are what the two sides exchange; they hold nothing
platform-specific. ``docs/providers.md`` says how a platform is added.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from aicollect.matching.v1 import matching_service_pb2 as mpb
from services.integration.budget import Priority, RequestLimits

Json = dict[str, Any]
T = TypeVar("T")


# -- OAuth 2.0 (every platform we plan speaks it) -------------------------------------------


class OAuthError(Exception):
    """The token or revoke endpoint refused a request (never carries token values)."""

    def __init__(self, error: str, *, status: int, intuit_tid: str | None = None) -> None:
        super().__init__(f"OAuth error '{error}' (HTTP {status}, trace id {intuit_tid})")
        self.error = error
        self.status = status
        self.intuit_tid = intuit_tid  # the platform's request id (Intuit: intuit_tid)


class InvalidGrant(OAuthError):
    """The code or refresh token was rejected: expired, superseded, revoked, or reused."""


class OAuthUnavailable(Exception):
    """The authorization server could not be reached or answered 5xx; retry later."""


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str
    access_expires_at: float
    refresh_expires_at: float | None
    refresh_hard_expires_at: float | None
    # Who granted it, where one grant can cover several companies (Xero: the token's
    # ``xero_userid``): the core stores such a grant once per subject. "" for QBO.
    subject: str = ""
    # The consent that produced it (Xero: ``authentication_event_id``): which companies
    # were chosen in *this* consent. "" for QBO.
    consent_id: str = ""

    def __repr__(self) -> str:  # never print token values
        return (
            f"TokenSet(access_expires_at={self.access_expires_at}, "
            f"refresh_expires_at={self.refresh_expires_at}, "
            f"refresh_hard_expires_at={self.refresh_hard_expires_at})"
        )

    @classmethod
    def from_response(cls, body: dict[str, Any], now: float) -> TokenSet:
        """An RFC 6749 token response (plus Intuit's refresh-expiry extensions)."""
        try:
            access, refresh = str(body["access_token"]), str(body["refresh_token"])
            expires_in = float(body["expires_in"])
        except (KeyError, TypeError, ValueError):
            raise OAuthError("malformed_token_response", status=200) from None

        def _abs(key: str) -> float | None:
            value = body.get(key)
            return now + float(value) if value is not None else None

        return cls(
            access_token=access,
            refresh_token=refresh,
            access_expires_at=now + expires_in,
            refresh_expires_at=_abs("x_refresh_token_expires_in"),
            refresh_hard_expires_at=_abs("x_refresh_token_hard_expires_in"),
        )


# -- API calls: what a failure means to the core --------------------------------------------


class FailureKind(StrEnum):
    THROTTLED = "throttled"  # the company's rate limit: wait ``retry_after_s``, then again
    UNAVAILABLE = "unavailable"  # 5xx, timeout, network: back off and retry
    UNAUTHORIZED = "unauthorized"  # the access token was refused: refresh once, then re-auth
    REFUSED = "refused"  # the platform refused this request (4xx): not retried


@dataclass(frozen=True)
class CallFailure:
    """A platform error as the core sees it. ``message`` is safe to log and store."""

    kind: FailureKind
    message: str
    status: int | None = None
    code: str = ""
    trace_id: str | None = None  # the platform's request id, for support (Intuit: intuit_tid)
    retry_after_s: float = 60.0
    app_wide: bool = False  # THROTTLED by a limit of the whole app, not of the company


@dataclass(frozen=True)
class Company:
    """The company an access token was granted for, as the platform reports it."""

    company_id: str
    name: str
    # The platform's id of our app's link to this company, where it has one (Xero: the
    # ``/connections`` id that disconnects one organisation); "" otherwise.
    connection_id: str = ""


# -- webhooks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookEvent:
    """One change notification, as stored in the inbox (ids only: the entity is read)."""

    event_id: str  # the platform's event id, or a digest of the entry
    realm_id: str  # the company
    entity: str  # the platform's entity name (Invoice | Payment | ... | anything else)
    entity_id: str
    operation: str  # Create | Update | Delete | Void | Merge | Emailed
    occurred_at: datetime
    deleted_id: str | None
    raw: dict[str, Any]
    relevant: bool = True  # an entity the sync reads; others are counted and dropped

    @property
    def dedupe_key(self) -> str:
        """Same company, entity, id, time and operation: the same change, whatever the id."""
        stamp = self.occurred_at.isoformat(timespec="microseconds")
        return f"{self.realm_id}|{self.entity}|{self.entity_id}|{stamp}|{self.operation}"


# -- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    rows: list[Json]
    start_position: int
    time: str | None
    # How many rows the query matched at this read, when the platform says (Xero's
    # ``pagination.itemCount``); None otherwise.
    total: int | None = None


@dataclass(frozen=True)
class ChangeSet:
    """One change-data-capture answer: each entity's objects (deleted stubs included) and
    the platform's time of the answer (the next high-water mark)."""

    objects: dict[str, list[Json]]
    time: str

    @property
    def count(self) -> int:
        return sum(len(rows) for rows in self.objects.values())


class Caller(Protocol):
    """The core's gate to a platform (``tokens.PlatformCaller``): runs
    ``op(realm_id, access_token)`` under the realm's budget, with a valid token, retried
    as the platform's errors say (``classify_error``)."""

    async def call(
        self,
        tenant_id: str,
        op: Callable[[str, str], Awaitable[T]],
        *,
        priority: Priority = Priority.WEBHOOK,
    ) -> T: ...


class EntityReader(Protocol):
    """Reads for one tenant's company at one priority; every call goes through the core's
    caller (budget slot, valid token, retries, kill switch)."""

    tenant_id: str
    realm_id: str
    calls: int
    max_page: int  # the most rows one page may hold
    # How many ids one read by id carries (``by_ids`` splits longer lists): QBO 500 in an
    # ``Id IN (...)`` query, Xero 40 in an ``IDs=`` list.
    ids_per_call: int
    # How a backfill page is addressed: False, from any row (QBO's ``STARTPOSITION``);
    # True, only at a multiple of the page size (Xero's page numbers).
    pages_by_number: bool

    async def company_time(self) -> str: ...

    def expect(self, entity: str, count: int) -> None:
        """Says that this reader will be asked for about ``count`` distinct records of
        ``entity`` over its life, a batch at a time (a confirmation's customers): a
        reader that can read them more cheaply together may choose so once, for all."""
        ...

    async def by_ids(self, entity: str, ids: Sequence[str], where: str = "") -> dict[str, Json]:
        """The entities with these ids that exist (deleted ones are absent)."""
        ...

    async def changes_since(self, entities: Sequence[str], since: datetime) -> ChangeSet: ...

    def changed_between(
        self, entity: str, since: datetime, until: datetime | None = None
    ) -> AsyncIterator[Page]:
        """What still exists of ``entity`` changed since ``since`` (up to ``until``)."""
        ...

    def overdue_between(self, after: date, through: date) -> AsyncIterator[Page]:
        """Open invoices due after ``after`` and by ``through``."""
        ...

    def overdue_by_due_date(
        self, today: date, *, start: int = 1, page_size: int = ...
    ) -> AsyncIterator[Page]:
        """Overdue invoices (balance > 0, due before ``today``) by due date, then id."""
        ...

    async def overdue_invoices(self, today: date, start: int, size: int) -> Page:
        """One page of the backfill: invoices with a balance due before ``today``, by id,
        from row ``start`` (1-based; with ``pages_by_number``, a row that begins a page)."""
        ...

    def unapplied_payments(self) -> AsyncIterator[Page]:
        """What the backfill reads of the money customers paid before the connection:
        every payment that may still carry money applied to no invoice, page by page
        (the platform's narrowest filter; the backfill keeps those whose mapped
        ``unapplied_amount`` is above zero)."""
        ...


# -- accounting facts -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InvoiceFacts:
    """What the placement rules and the preview need from an invoice."""

    invoice_id: str
    doc_number: str
    customer_id: str
    customer_name: str
    currency: str
    total: int
    balance: int
    due_date: date | None
    txn_date: date | None
    voided: bool

    def days_past_due(self, today: date) -> int:
        return (today - self.due_date).days if self.due_date is not None else 0

    def overdue(self, today: date) -> bool:
        """A candidate: open balance, due before the company's today, not voided."""
        return (
            not self.voided
            and self.balance > 0
            and self.due_date is not None
            and self.due_date < today
        )


class AccountingFacts(Protocol):
    """A platform's JSON -> the accounting facts the matcher takes (its contract messages).
    Pure functions, no I/O; money in integer minor units."""

    def entity_id(self, entity: Mapping[str, Any]) -> str: ...
    def is_deleted(self, entity: Mapping[str, Any]) -> bool: ...
    def invoice_facts(self, invoice: Mapping[str, Any]) -> InvoiceFacts: ...
    def invoice(self, invoice: Mapping[str, Any]) -> mpb.AccountingInvoice: ...
    def payment(self, payment: Mapping[str, Any]) -> mpb.AccountingPayment: ...
    def debtor_contact(self, customer: Mapping[str, Any]) -> mpb.DebtorContact: ...
    def placement_input(
        self,
        invoice: Mapping[str, Any],
        *,
        facts: InvoiceFacts,
        debtor: mpb.DebtorContact | None,
    ) -> mpb.PlacementInput: ...
    def linked_invoice_ids(self, entity: Mapping[str, Any]) -> list[str]: ...
    def parse_time(self, text: str) -> datetime:
        """The platform's own timestamps (high-water marks, the company's clock)."""
        ...


# -- the seam ---------------------------------------------------------------------------------


class AccountingPlatform(Protocol):
    """One accounting platform (QuickBooks Online, Xero, ...), as the core uses it."""

    name: str  # the registry key and the ``provider`` value: "qbo"
    display_name: str  # for people: "QuickBooks"
    scopes: tuple[str, ...]  # what the authorize URL asks for
    entities: tuple[str, ...]  # the entities the sync reads, in their canonical spelling
    facts: AccountingFacts  # its JSON -> accounting facts
    # Its per-company request limits (every replica together): QBO 500 a minute, 10 at once.
    request_limits: RequestLimits
    # Limits of the whole app, every company and replica together (Xero: 10,000 calls a
    # minute); None when the platform has none worth budgeting (QBO).
    app_request_limits: RequestLimits | None
    # Whether one grant (token) can cover several companies (Xero: one per Xero user):
    # the core then stores the grant once, keys its refresh lock by the grant, asks
    # ``consented_companies`` which company a consent chose, and revokes only when no
    # company of ours still uses the grant. False for QBO (a grant per company).
    shared_grants: bool
    # How often the safety-net poll re-reads every placed invoice by id, for a platform
    # whose change times miss some edits (Xero: a due date on a part-paid invoice);
    # 0 = never (QBO's change feed reports every change).
    placed_reread_seconds: float

    # OAuth
    async def authorize_url(self, state: str) -> str: ...
    async def exchange_code(self, code: str) -> TokenSet: ...
    async def refresh(self, refresh_token: str) -> TokenSet: ...
    async def revoke(self, token: str) -> None: ...
    async def company(self, company_id: str, access_token: str) -> Company | None:
        """The company the token covers when it is ``company_id``; None when the platform
        confirms nothing; raises the client's errors (see ``classify_error``)."""
        ...

    async def consented_companies(self, tokens: TokenSet) -> list[Company]:
        """The companies chosen in the consent that produced ``tokens`` (shared grants
        only; a platform whose callback names the company returns [])."""
        ...

    async def release_company(self, company: Company, access_token: str) -> None:
        """Ends our access to one company without revoking the grant (Xero: DELETE
        /connections/{id}); a no-op where revoking is the only way."""
        ...

    # webhooks
    def verify_webhook(self, body: bytes, signature: str) -> None:
        """Raises ``Unauthenticated`` unless ``signature`` signs ``body`` (raw bytes)."""
        ...

    def parse_webhook(self, body: bytes) -> list[WebhookEvent]:
        """Raises ``InvalidArgument`` for a body that is not a delivery (kept raw)."""
        ...

    # reading, through the core's caller
    def reader(
        self, caller: Caller, tenant_id: str, realm_id: str, priority: Priority
    ) -> EntityReader: ...

    def entity_name(self, name: str) -> str | None:
        """The canonical spelling of an entity the sync reads, None for any other."""
        ...

    # errors
    def classify_error(self, exc: BaseException) -> CallFailure | None:
        """What an exception of this platform's client means; None when it is not one."""
        ...

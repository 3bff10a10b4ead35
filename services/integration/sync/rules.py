"""Placement rules: which overdue invoices of a tenant become placements.

An invoice is a candidate when its balance is above zero and its due date is before the
company's today; the rules narrow the candidates down. Stored per tenant in
``integration.placement_rules`` with a version (optimistic concurrency); every change is
audited with its actor and reason. Validation names the offending field, and nothing is
stored when any field is invalid.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from aicollect.db.settings_store import require_actor_and_reason
from aicollect.errors import ConcurrentModification, InvalidArgument
from aicollect.integration.v1 import integration_service_pb2 as pb
from services.integration.admin import validate_tenant_id
from services.integration.models import AuditEvent, PlacementRulesRow
from services.integration.providers.base import InvoiceFacts

MAX_DAYS_PAST_DUE = 3650
MAX_CURRENCIES = 200
MAX_CUSTOMER_IDS = 10_000
MAX_CUSTOMER_ID_LENGTH = 64
_CURRENCY = re.compile(r"[A-Z]{3}")


class Exclusion(StrEnum):
    """Why an overdue invoice would not be placed (the contract's PlacementExclusionReason)."""

    TOO_FEW_DAYS_PAST_DUE = "too_few_days_past_due"
    BALANCE_BELOW_MINIMUM = "balance_below_minimum"
    BALANCE_ABOVE_MAXIMUM = "balance_above_maximum"
    CURRENCY_NOT_ALLOWED = "currency_not_allowed"
    CUSTOMER_EXCLUDED = "customer_excluded"
    CUSTOMER_NOT_INCLUDED = "customer_not_included"


@dataclass(frozen=True, slots=True)
class BalanceLimit:
    currency: str
    minimum: int | None = None
    maximum: int | None = None


@dataclass(frozen=True)
class PlacementRules:
    min_days_past_due: int = 0
    balance_limits: tuple[BalanceLimit, ...] = ()
    currency_codes: tuple[str, ...] = ()
    excluded_customer_ids: tuple[str, ...] = ()
    included_customer_ids: tuple[str, ...] = ()
    _limits: dict[str, BalanceLimit] = field(init=False, repr=False, compare=False)
    _currencies: frozenset[str] = field(init=False, repr=False, compare=False)
    _excluded: frozenset[str] = field(init=False, repr=False, compare=False)
    _included: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_limits", {b.currency: b for b in self.balance_limits})
        object.__setattr__(self, "_currencies", frozenset(self.currency_codes))
        object.__setattr__(self, "_excluded", frozenset(self.excluded_customer_ids))
        object.__setattr__(self, "_included", frozenset(self.included_customer_ids))

    # -- evaluation ---------------------------------------------------------------------

    def exclusion(self, invoice: InvoiceFacts, today: date) -> Exclusion | None:
        """Why a candidate would not be placed; None when it would. Checked in a fixed
        order: customer, currency, days past due, balance bounds."""
        if invoice.customer_id in self._excluded:
            return Exclusion.CUSTOMER_EXCLUDED
        if self._included and invoice.customer_id not in self._included:
            return Exclusion.CUSTOMER_NOT_INCLUDED
        if self._currencies and invoice.currency not in self._currencies:
            return Exclusion.CURRENCY_NOT_ALLOWED
        if invoice.days_past_due(today) < self.min_days_past_due:
            return Exclusion.TOO_FEW_DAYS_PAST_DUE
        limit = self._limits.get(invoice.currency)
        if limit is not None:
            if limit.minimum is not None and invoice.balance < limit.minimum:
                return Exclusion.BALANCE_BELOW_MINIMUM
            if limit.maximum is not None and invoice.balance > limit.maximum:
                return Exclusion.BALANCE_ABOVE_MAXIMUM
        return None

    def places(self, invoice: InvoiceFacts, today: date) -> bool:
        """True when the invoice is overdue on ``today`` and passes every rule."""
        return invoice.overdue(today) and self.exclusion(invoice, today) is None

    def due_cutoff(self, today: date) -> date:
        """The latest due date old enough to be placed on ``today``."""
        return today - timedelta(days=max(1, self.min_days_past_due))

    # -- representations ----------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "min_days_past_due": self.min_days_past_due,
            "balance_limits": [
                {"currency_code": b.currency, "min": b.minimum, "max": b.maximum}
                for b in self.balance_limits
            ],
            "currency_codes": list(self.currency_codes),
            "excluded_customer_ids": list(self.excluded_customer_ids),
            "included_customer_ids": list(self.included_customer_ids),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlacementRules:
        return cls(
            min_days_past_due=int(data.get("min_days_past_due", 0)),
            balance_limits=tuple(
                BalanceLimit(b["currency_code"], b.get("min"), b.get("max"))
                for b in data.get("balance_limits", [])
            ),
            currency_codes=tuple(data.get("currency_codes", [])),
            excluded_customer_ids=tuple(data.get("excluded_customer_ids", [])),
            included_customer_ids=tuple(data.get("included_customer_ids", [])),
        )

    def to_pb(self) -> pb.PlacementRules:
        limits = []
        for b in self.balance_limits:
            limit = pb.BalanceLimit(currency_code=b.currency)
            if b.minimum is not None:
                limit.min_balance_minor_units = b.minimum
            if b.maximum is not None:
                limit.max_balance_minor_units = b.maximum
            limits.append(limit)
        return pb.PlacementRules(
            min_days_past_due=self.min_days_past_due,
            balance_limits=limits,
            currency_codes=self.currency_codes,
            excluded_customer_ids=self.excluded_customer_ids,
            included_customer_ids=self.included_customer_ids,
        )


DEFAULT_RULES = PlacementRules()


def placeable(facts: InvoiceFacts) -> bool:
    """What the matcher requires of a new placement (checked before a batch is sent, so
    one incomplete invoice never fails the others)."""
    return bool(facts.invoice_id and facts.customer_id and facts.due_date and facts.balance > 0)


def _customer_ids(values: Sequence[str], name: str) -> tuple[str, ...]:
    if len(values) > MAX_CUSTOMER_IDS:
        raise InvalidArgument(f"{name} holds more than {MAX_CUSTOMER_IDS} customer ids", field=name)
    seen: set[str] = set()
    out = []
    for i, raw in enumerate(values):
        value = raw.strip()
        where = f"{name}[{i}]"
        if not value:
            raise InvalidArgument(f"{where} is empty; give a QBO customer id", field=where)
        if len(value) > MAX_CUSTOMER_ID_LENGTH or not value.isprintable() or " " in value:
            raise InvalidArgument(
                f"{where} must be a QBO customer id (at most {MAX_CUSTOMER_ID_LENGTH} "
                "printable characters without spaces)",
                field=where,
            )
        if value in seen:
            raise InvalidArgument(f"{where} repeats customer id {value}", field=where)
        seen.add(value)
        out.append(value)
    return tuple(out)


def _currency(value: str, where: str) -> str:
    if not _CURRENCY.fullmatch(value):
        raise InvalidArgument(
            f"{where} must be a three-letter ISO 4217 code in upper case, for example USD",
            field=where,
        )
    return value


def rules_from_pb(message: pb.PlacementRules, name: str = "rules") -> PlacementRules:
    """Validates rules from a request; INVALID_ARGUMENT names the first bad field."""
    days = message.min_days_past_due
    if not 0 <= days <= MAX_DAYS_PAST_DUE:
        raise InvalidArgument(
            f"{name}.min_days_past_due must be between 0 and {MAX_DAYS_PAST_DUE}",
            field=f"{name}.min_days_past_due",
        )
    if len(message.balance_limits) > MAX_CURRENCIES:
        raise InvalidArgument(
            f"{name}.balance_limits holds more than {MAX_CURRENCIES} entries",
            field=f"{name}.balance_limits",
        )
    limits: list[BalanceLimit] = []
    seen: set[str] = set()
    for i, limit in enumerate(message.balance_limits):
        where = f"{name}.balance_limits[{i}]"
        currency = _currency(limit.currency_code, f"{where}.currency_code")
        if currency in seen:
            raise InvalidArgument(
                f"{where}.currency_code {currency} has a second entry; give one per currency",
                field=f"{where}.currency_code",
            )
        seen.add(currency)
        low = limit.min_balance_minor_units if limit.HasField("min_balance_minor_units") else None
        high = limit.max_balance_minor_units if limit.HasField("max_balance_minor_units") else None
        if low is not None and low < 0:
            raise InvalidArgument(
                f"{where}.min_balance_minor_units must not be negative",
                field=f"{where}.min_balance_minor_units",
            )
        if high is not None and high < 0:
            raise InvalidArgument(
                f"{where}.max_balance_minor_units must not be negative",
                field=f"{where}.max_balance_minor_units",
            )
        if low is not None and high is not None and high < low:
            raise InvalidArgument(
                f"{where}.max_balance_minor_units must be at least min_balance_minor_units",
                field=f"{where}.max_balance_minor_units",
            )
        limits.append(BalanceLimit(currency, low, high))
    if len(message.currency_codes) > MAX_CURRENCIES:
        raise InvalidArgument(
            f"{name}.currency_codes holds more than {MAX_CURRENCIES} codes",
            field=f"{name}.currency_codes",
        )
    currencies: list[str] = []
    for i, code in enumerate(message.currency_codes):
        where = f"{name}.currency_codes[{i}]"
        if _currency(code, where) in currencies:
            raise InvalidArgument(f"{where} repeats {code}", field=where)
        currencies.append(code)
    return PlacementRules(
        min_days_past_due=days,
        balance_limits=tuple(limits),
        currency_codes=tuple(currencies),
        excluded_customer_ids=_customer_ids(
            message.excluded_customer_ids, f"{name}.excluded_customer_ids"
        ),
        included_customer_ids=_customer_ids(
            message.included_customer_ids, f"{name}.included_customer_ids"
        ),
    )


# -- storage ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredRules:
    rules: PlacementRules
    version: int
    update_time: datetime | None
    update_actor: str


async def get_rules(session: AsyncSession, tenant_id: str) -> StoredRules:
    tenant_id = validate_tenant_id(tenant_id)
    row = await session.get(PlacementRulesRow, tenant_id)
    if row is None:
        return StoredRules(DEFAULT_RULES, 0, None, "")
    return StoredRules(
        PlacementRules.from_json(row.rules), row.version, row.updated_at, row.updated_by
    )


async def set_rules(
    session: AsyncSession,
    tenant_id: str,
    rules: PlacementRules,
    *,
    expected_version: int,
    actor: str,
    reason: str,
) -> StoredRules:
    """Replaces the tenant's rules if ``expected_version`` is current; audited.

    Setting the rules already stored changes nothing (no new version, no audit record).
    """
    tenant_id = validate_tenant_id(tenant_id)
    actor, reason = require_actor_and_reason(actor, reason)
    if expected_version < 0:
        raise InvalidArgument("expected_version must not be negative", field="expected_version")
    row = (
        await session.execute(
            select(PlacementRulesRow)
            .where(PlacementRulesRow.tenant_id == tenant_id)
            .with_for_update()
        )
    ).scalar_one_or_none()
    current = row.version if row is not None else 0
    if expected_version != current:
        raise ConcurrentModification(
            f"the placement rules are at version {current}, not {expected_version}; "
            "read them again and retry",
            metadata={"current_version": str(current)},
        )
    old = PlacementRules.from_json(row.rules) if row is not None else DEFAULT_RULES
    if row is not None and old == rules:
        return StoredRules(old, row.version, row.updated_at, row.updated_by)
    new_version = current + 1
    if row is None:
        inserted = await session.execute(
            pg_insert(PlacementRulesRow)
            .values(tenant_id=tenant_id, rules=rules.to_json(), version=1, updated_by=actor)
            .on_conflict_do_nothing(index_elements=[PlacementRulesRow.tenant_id])
            .returning(PlacementRulesRow.tenant_id)
        )
        if inserted.first() is None:  # someone stored version 1 between our read and write
            raise ConcurrentModification(
                "the placement rules were set concurrently; read them again and retry"
            )
    else:
        row.rules = rules.to_json()
        row.version = new_version
        row.updated_by = actor
    session.add(
        AuditEvent(
            tenant_id=tenant_id,
            subject_type="placement_rules",
            subject_id=tenant_id,
            action="placement_rules.set",
            actor=actor,
            reason=reason,
            details={"version": new_version, "old": old.to_json(), "new": rules.to_json()},
        )
    )
    await session.flush()
    session.expire_all()
    return await get_rules(session, tenant_id)

"""Placement rules: evaluation, validation naming the field, versioned storage with
optimistic concurrency, the audit trail, and a backfill that honours them."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import grpc
import pytest
from sqlalchemy import select

from aicollect.integration.v1 import integration_service_pb2 as pb
from aicollect.rpc.errors import error_info
from services.integration.deps import IntegrationDeps
from services.integration.models import AuditEvent, PlacementRulesRow
from services.integration.providers.base import InvoiceFacts
from services.integration.sync.rules import (
    BalanceLimit,
    Exclusion,
    PlacementRules,
    rules_from_pb,
)
from tests.conftest import Emulator
from tests.services.integration.sync.conftest import (
    TENANT,
    backfill,
    books,
    overdue_in_books,
    placements,
    stub,
)

TODAY = date(2026, 1, 15)


def invoice(**changes: Any) -> InvoiceFacts:
    values: dict[str, Any] = {
        "invoice_id": "70",
        "doc_number": "1001",
        "customer_id": "20",
        "customer_name": "Red Rock Diner",
        "currency": "USD",
        "total": 10_000,
        "balance": 10_000,
        "due_date": TODAY - timedelta(days=40),
        "txn_date": TODAY - timedelta(days=70),
        "voided": False,
        **changes,
    }
    return InvoiceFacts(**values)


def test_default_rules_place_every_overdue_invoice() -> None:
    rules = PlacementRules()
    assert rules.places(invoice(), TODAY)
    assert rules.places(invoice(due_date=TODAY - timedelta(days=1)), TODAY)
    assert not rules.places(invoice(due_date=TODAY), TODAY)
    assert not rules.places(invoice(balance=0), TODAY)
    assert not rules.places(invoice(voided=True), TODAY)
    assert rules.due_cutoff(TODAY) == TODAY - timedelta(days=1)


@pytest.mark.parametrize(
    ("rules", "facts", "reason"),
    [
        (PlacementRules(min_days_past_due=41), {}, Exclusion.TOO_FEW_DAYS_PAST_DUE),
        (PlacementRules(min_days_past_due=40), {}, None),
        (
            PlacementRules(balance_limits=(BalanceLimit("USD", minimum=10_001),)),
            {},
            Exclusion.BALANCE_BELOW_MINIMUM,
        ),
        (
            PlacementRules(balance_limits=(BalanceLimit("USD", maximum=9_999),)),
            {},
            Exclusion.BALANCE_ABOVE_MAXIMUM,
        ),
        (PlacementRules(balance_limits=(BalanceLimit("CAD", minimum=10**9),)), {}, None),
        (PlacementRules(currency_codes=("CAD",)), {}, Exclusion.CURRENCY_NOT_ALLOWED),
        (PlacementRules(currency_codes=("CAD", "USD")), {}, None),
        (PlacementRules(excluded_customer_ids=("20",)), {}, Exclusion.CUSTOMER_EXCLUDED),
        (PlacementRules(included_customer_ids=("21",)), {}, Exclusion.CUSTOMER_NOT_INCLUDED),
        (
            PlacementRules(included_customer_ids=("20",), excluded_customer_ids=("20",)),
            {},
            Exclusion.CUSTOMER_EXCLUDED,  # exclusion wins
        ),
    ],
)
def test_each_rule(rules: PlacementRules, facts: dict[str, Any], reason: Exclusion | None) -> None:
    assert rules.exclusion(invoice(**facts), TODAY) == reason
    assert rules.due_cutoff(TODAY) == TODAY - timedelta(days=max(1, rules.min_days_past_due))


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (pb.PlacementRules(min_days_past_due=-1), "rules.min_days_past_due"),
        (pb.PlacementRules(min_days_past_due=100_000), "rules.min_days_past_due"),
        (
            pb.PlacementRules(balance_limits=[pb.BalanceLimit(currency_code="usd")]),
            "rules.balance_limits[0].currency_code",
        ),
        (
            pb.PlacementRules(
                balance_limits=[
                    pb.BalanceLimit(currency_code="USD"),
                    pb.BalanceLimit(currency_code="USD"),
                ]
            ),
            "rules.balance_limits[1].currency_code",
        ),
        (
            pb.PlacementRules(
                balance_limits=[pb.BalanceLimit(currency_code="USD", min_balance_minor_units=-5)]
            ),
            "rules.balance_limits[0].min_balance_minor_units",
        ),
        (
            pb.PlacementRules(
                balance_limits=[
                    pb.BalanceLimit(
                        currency_code="USD",
                        min_balance_minor_units=500,
                        max_balance_minor_units=100,
                    )
                ]
            ),
            "rules.balance_limits[0].max_balance_minor_units",
        ),
        (pb.PlacementRules(currency_codes=["USD", "EURO"]), "rules.currency_codes[1]"),
        (pb.PlacementRules(currency_codes=["USD", "USD"]), "rules.currency_codes[1]"),
        (pb.PlacementRules(excluded_customer_ids=["1", " "]), "rules.excluded_customer_ids[1]"),
        (pb.PlacementRules(included_customer_ids=["a b"]), "rules.included_customer_ids[0]"),
        (pb.PlacementRules(included_customer_ids=["7", "7"]), "rules.included_customer_ids[1]"),
    ],
)
def test_invalid_rules_name_the_field(message: pb.PlacementRules, field: str) -> None:
    from aicollect.errors import InvalidArgument

    with pytest.raises(InvalidArgument) as info:
        rules_from_pb(message)
    assert info.value.field == field


def test_rules_round_trip() -> None:
    message = pb.PlacementRules(
        min_days_past_due=30,
        balance_limits=[
            pb.BalanceLimit(currency_code="USD", min_balance_minor_units=5000),
            pb.BalanceLimit(currency_code="CAD", max_balance_minor_units=10**7),
        ],
        currency_codes=["USD", "CAD"],
        excluded_customer_ids=["5"],
        included_customer_ids=[],
    )
    rules = rules_from_pb(message)
    assert rules.to_pb() == message
    assert PlacementRules.from_json(rules.to_json()) == rules
    assert not rules.to_pb().balance_limits[0].HasField("max_balance_minor_units")


async def _audits(deps: IntegrationDeps) -> list[AuditEvent]:
    async with deps.sessions() as session:
        rows = await session.execute(
            select(AuditEvent)
            .where(AuditEvent.subject_type == "placement_rules")
            .order_by(AuditEvent.id)
        )
        return list(rows.scalars())


async def test_get_set_versioned_validated_and_audited(
    channel: grpc.aio.Channel, deps: IntegrationDeps
) -> None:
    api = stub(channel)
    got = await api.GetPlacementRules(pb.GetPlacementRulesRequest(tenant_id=TENANT))
    assert got.version == 0
    assert got.rules == pb.PlacementRules()
    assert not got.HasField("update_time")

    wanted = pb.PlacementRules(min_days_past_due=30, currency_codes=["USD"])
    stored = await api.SetPlacementRules(
        pb.SetPlacementRulesRequest(
            tenant_id=TENANT, rules=wanted, expected_version=0, actor="sam@support", reason="pilot"
        )
    )
    assert stored.version == 1
    assert stored.rules == wanted
    got = await api.GetPlacementRules(pb.GetPlacementRulesRequest(tenant_id=TENANT))
    assert (got.version, got.update_actor, got.rules) == (1, "sam@support", wanted)
    assert got.HasField("update_time")

    # A stale version loses: ABORTED, nothing changes.
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await api.SetPlacementRules(
            pb.SetPlacementRulesRequest(
                tenant_id=TENANT,
                rules=pb.PlacementRules(min_days_past_due=5),
                expected_version=0,
                actor="kim@support",
                reason="race",
            )
        )
    assert info.value.code() == grpc.StatusCode.ABORTED
    detail = error_info(info.value)
    assert detail is not None
    assert detail.reason == "CONCURRENT_MODIFICATION"

    # Invalid rules: INVALID_ARGUMENT naming the field, nothing changes.
    bad = pb.PlacementRules(
        min_days_past_due=10,
        balance_limits=[
            pb.BalanceLimit(
                currency_code="USD", min_balance_minor_units=900, max_balance_minor_units=100
            )
        ],
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await api.SetPlacementRules(
            pb.SetPlacementRulesRequest(
                tenant_id=TENANT, rules=bad, expected_version=1, actor="kim", reason="x"
            )
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "rules.balance_limits[0].max_balance_minor_units" in (info.value.details() or "")
    detail = error_info(info.value)
    assert detail is not None
    assert detail.reason == "FIELD_INVALID"
    assert detail.metadata["field"] == "rules.balance_limits[0].max_balance_minor_units"

    # Actor and reason are required; rules are required.
    for request, field in [
        (
            pb.SetPlacementRulesRequest(
                tenant_id=TENANT, rules=wanted, expected_version=1, actor="", reason="x"
            ),
            "actor",
        ),
        (
            pb.SetPlacementRulesRequest(
                tenant_id=TENANT, rules=wanted, expected_version=1, actor="kim", reason=" "
            ),
            "reason",
        ),
        (
            pb.SetPlacementRulesRequest(
                tenant_id=TENANT, expected_version=1, actor="kim", reason="x"
            ),
            "rules",
        ),
        (pb.SetPlacementRulesRequest(rules=wanted, actor="kim", reason="x"), "tenant_id"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await api.SetPlacementRules(request)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        detail = error_info(info.value)
        assert detail is not None
        assert detail.metadata["field"] == field

    # Setting what is stored is a no-op; a real change is version 2.
    same = await api.SetPlacementRules(
        pb.SetPlacementRulesRequest(
            tenant_id=TENANT, rules=wanted, expected_version=1, actor="kim", reason="again"
        )
    )
    assert same.version == 1
    changed = pb.PlacementRules(min_days_past_due=45, excluded_customer_ids=["17"])
    second = await api.SetPlacementRules(
        pb.SetPlacementRulesRequest(
            tenant_id=TENANT, rules=changed, expected_version=1, actor="kim", reason="creditor ask"
        )
    )
    assert second.version == 2

    audits = await _audits(deps)
    assert [(a.actor, a.reason, a.details["version"]) for a in audits] == [
        ("sam@support", "pilot", 1),
        ("kim", "creditor ask", 2),
    ]
    assert audits[1].details["old"]["min_days_past_due"] == 30
    assert audits[1].details["new"]["excluded_customer_ids"] == ["17"]
    assert all(a.action == "placement_rules.set" and a.tenant_id == TENANT for a in audits)
    async with deps.sessions() as session:
        row = await session.get(PlacementRulesRow, TENANT)
    assert row is not None
    assert row.version == 2


async def test_the_backfill_places_only_what_the_rules_allow(
    connected: grpc.aio.Channel, deps: IntegrationDeps, emulator: Emulator
) -> None:
    company = books(emulator)
    overdue = overdue_in_books(emulator)
    excluded = sorted({i.customer_id for i in overdue.values()}, key=int)[0]
    await stub(connected).SetPlacementRules(
        pb.SetPlacementRulesRequest(
            tenant_id=TENANT,
            rules=pb.PlacementRules(
                min_days_past_due=10,
                excluded_customer_ids=[excluded],
                balance_limits=[pb.BalanceLimit(currency_code="USD", min_balance_minor_units=100)],
            ),
            expected_version=0,
            actor="support",
            reason="pilot rules",
        )
    )
    await backfill(deps)
    today = company.today()
    wanted = {
        i.id
        for i in overdue.values()
        if i.customer_id != excluded
        and (today - date.fromisoformat(i.due_date)).days >= 10
        and i.balance >= 100
    }
    assert wanted
    assert wanted != set(overdue)
    assert set(await placements(deps)) == wanted

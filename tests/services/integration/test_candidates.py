"""Preview, then confirm, through the real pipeline: the emulator (Intuit) with signed
webhooks, the gateway's dashboard routes (JWT), the integration service with its workers,
the matcher and its outreach stream.

After connecting, the first backfill stages the overdue invoices the rules select as
candidates: nothing is placed and the outreach stream stays silent. The creditor excludes
one; a payment recorded in QuickBooks before confirmation drops one candidate and shrinks
another; the confirmation re-reads every candidate and places only the included, unpaid
ones (intake channel ``accounting_sync``), after which outreach is live. "Confirm each
time" keeps newly overdue invoices waiting. Bad requests change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from aicollect.integration.v1 import admin_service_pb2 as apb
from aicollect.integration.v1 import admin_service_pb2_grpc as agrpc
from aicollect.matching.v1 import matching_service_pb2 as mpb
from aicollect.rpc.client import internal_channel
from emulators.qbo.config import CompanySpec
from tests.conftest import INTERNAL_TOKEN, REALM_ID, Emulator, running_emulator
from tests.e2e.pipeline import TENANT, Pipeline, running_pipeline
from tests.helpers.confirming import until_confirmed
from tests.helpers.connections import connect
from tests.stack import enable_tenant

OTHER_TENANT = "globex"
OTHER_REALM = "9130000000000777"


@pytest_asyncio.fixture
async def emulator() -> AsyncIterator[Emulator]:
    company = CompanySpec(
        realm_id=REALM_ID, name="Acme Widgets LLC", customers=4, invoices=20, overdue_fraction=0.5
    )
    async with running_emulator(company) as running:
        yield running


@pytest_asyncio.fixture
async def pipeline(engine: AsyncEngine, emulator: Emulator) -> AsyncIterator[Pipeline]:
    async with running_pipeline(engine, emulator, confirm=False) as p:
        yield p


class Dashboard:
    """The creditor's dashboard: the gateway's JSON routes with the tenant's JWT."""

    def __init__(self, p: Pipeline, http: aiohttp.ClientSession, tenant: str = TENANT) -> None:
        self.base = f"{p.stack.gateway_url}/v1/integrations/qbo"
        self.headers = {"Authorization": p.stack.bearer(tenant, subject="jane@acme.test")}
        self.http = http

    async def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any
    ) -> tuple[int, dict[str, Any]]:
        async with self.http.request(
            method, self.base + path, headers=self.headers, json=body, params=params or None
        ) as resp:
            return resp.status, await resp.json()

    async def candidates(self, *statuses: str) -> dict[str, Any]:
        params = [("status", s) for s in statuses] + [("page_size", "1000")]
        async with self.http.get(
            self.base + "/candidates", headers=self.headers, params=params
        ) as resp:
            body: dict[str, Any] = await resp.json()
            assert resp.status == 200, body
            return body

    async def by_invoice(self) -> dict[str, dict[str, Any]]:
        return {c["invoice_id"]: c for c in (await self.candidates())["candidates"]}

    async def backfill_done(self, p: Pipeline) -> dict[str, Any]:
        async def done() -> bool:
            status, body = await self.call("GET", "")
            return status == 200 and body["backfill"]["phase"] == "BACKFILL_PHASE_COMPLETED"

        await p.until(done, within=30, what="the first backfill")
        return (await self.call("GET", ""))[1]


def overdue_in_books(emulator: Emulator) -> dict[str, Any]:
    company = emulator.state.companies[REALM_ID]
    today = company.today().isoformat()
    return {
        i.id: i
        for i in company.invoices.values()
        if i.balance > 0 and not i.voided and i.due_date < today
    }


async def all_placements(p: Pipeline) -> dict[str, mpb.Placement]:
    reply = await p.matching.ListPlacements(
        mpb.ListPlacementsRequest(tenant_id=TENANT, page_size=1000)
    )
    return {pl.invoice_id: pl for pl in reply.placements}


async def pay(p: Pipeline, customer_id: str, invoice_id: str, amount: str) -> str:
    made = await p.control(
        "POST",
        "payments",
        {
            "customer_id": customer_id,
            "amount": amount,
            "lines": [{"invoice_id": invoice_id, "amount": amount}],
        },
    )
    return str(made["Payment"]["Id"])


def money(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


async def test_preview_exclude_payment_then_confirm_places_only_the_included_unpaid(
    pipeline: Pipeline, emulator: Emulator
) -> None:
    p = pipeline
    async with aiohttp.ClientSession() as http:
        dash = Dashboard(p, http)
        status = await dash.backfill_done(p)
        expected = overdue_in_books(emulator)
        assert len(expected) >= 5
        assert status["backfill"]["candidates_staged"] == str(len(expected))
        assert status["backfill"].get("placements_created", "0") == "0"
        # Candidates need no customer: the backfill read none (it read the invoices).
        queries = emulator.state.api_queries
        assert queries[(REALM_ID, "Customer")] == 0
        assert queries[(REALM_ID, "Invoice")] > 0

        # The preview: every selected invoice with debtor, amounts, due date, days overdue.
        preview = await dash.candidates()
        assert preview["mode"] == "PLACEMENT_INTAKE_MODE_PREVIEW"
        company = emulator.state.companies[REALM_ID]
        today = company.today()
        assert preview["company_date"] == today.isoformat()
        got = {c["invoice_id"]: c for c in preview["candidates"]}
        assert set(got) == set(expected)
        dues = [c["due_date"] for c in preview["candidates"]]
        assert dues == sorted(dues)  # by due date
        for invoice_id, invoice in expected.items():
            c = got[invoice_id]
            customer = company.customers[invoice.customer_id]
            assert c["status"] == "CANDIDATE_STATUS_PENDING"
            assert c["customer_id"] == invoice.customer_id
            assert c["customer_display_name"] == customer.display_name
            assert c["balance"] == {
                "currency_code": invoice.currency,
                "minor_units": str(invoice.balance),
            }
            assert c["due_date"] == invoice.due_date
            assert c["days_past_due"] == (today - type(today).fromisoformat(invoice.due_date)).days
            assert c["rules_version"] == "0"  # the default rules selected it
            assert c["placement_id"] == ""  # zero values are present
            assert c["drop_reason"] == "CANDIDATE_DROP_REASON_UNSPECIFIED"
        total = sum(i.balance for i in expected.values())
        (usd,) = preview["totals"]
        assert usd["pending_count"] == str(len(expected))
        assert usd["pending_balance_minor_units"] == str(total)
        assert usd["excluded_count"] == "0"

        # Nothing placed, no outreach.
        assert await all_placements(p) == {}
        assert p.events == []

        ordered = sorted(expected, key=lambda i: (len(i), i))
        excluded, paid, part_paid, *rest = ordered
        code, body = await dash.call(
            "POST", f"/candidates/{excluded}/exclude", {"reason": "disputed invoice"}
        )
        assert code == 200, body
        assert body["candidate"]["status"] == "CANDIDATE_STATUS_EXCLUDED"
        assert body["candidate"]["status_actor"] == "jane@acme.test"
        assert body["candidate"]["status_reason"] == "disputed invoice"

        # The bookkeeper records payments in QuickBooks before the creditor confirms.
        full = expected[paid]
        await pay(p, full.customer_id, paid, money(full.balance))
        part = expected[part_paid]
        owed = part.balance  # the emulator's invoice object follows its books
        await pay(p, part.customer_id, part_paid, "1.00")

        async def candidates_followed() -> bool:
            now = await dash.by_invoice()
            dropped: bool = now[paid]["status"] == "CANDIDATE_STATUS_DROPPED"
            return dropped and int(now[part_paid]["balance"]["minor_units"]) == owed - 100

        await p.until(candidates_followed, within=20, what="the candidates to follow payments")
        now = await dash.by_invoice()
        assert now[paid]["drop_reason"] == "CANDIDATE_DROP_REASON_PAID"
        assert now[part_paid]["status"] == "CANDIDATE_STATUS_PENDING"
        # Still nothing placed and no outreach event for the payments.
        assert await all_placements(p) == {}
        assert p.events == []

        code, body = await dash.call("POST", "/candidates/confirm", {})
        assert code == 200, body
        confirmation = await until_confirmed(dash.call, body)
        assert confirmation["state"] == "CONFIRMATION_STATE_CONFIRMED"
        assert (confirmation["total_count"], confirmation["remaining_count"]) == (
            str(len(expected) - 2),
            "0",
        )
        assert body.pop("confirmation")["confirmation_id"] == confirmation["confirmation_id"]
        assert body == {
            "placed_count": str(len(expected) - 2),
            "dropped_count": "0",
            "excluded_count": "1",
            "mode": "PLACEMENT_INTAKE_MODE_AUTOMATIC",
        }

        placements = await all_placements(p)
        assert set(placements) == set(expected) - {excluded, paid}
        assert queries[(REALM_ID, "Customer")] > 0  # the placements' debtors
        for placement in placements.values():
            assert placement.intake_channel == mpb.INTAKE_CHANNEL_ACCOUNTING_SYNC
            assert placement.status == mpb.PLACEMENT_STATUS_ACTIVE
        assert placements[part_paid].balance.minor_units == owed - 100
        after = await dash.by_invoice()
        for invoice_id in placements:
            assert after[invoice_id]["status"] == "CANDIDATE_STATUS_CONFIRMED"
            assert after[invoice_id]["placement_id"] == placements[invoice_id].placement_id
        assert after[excluded]["status"] == "CANDIDATE_STATUS_EXCLUDED"

        # Outreach is live: a payment now stops it.
        target = rest[0]
        invoice = expected[target]
        await pay(p, invoice.customer_id, target, money(invoice.balance))
        placement_id = placements[target].placement_id

        async def stopped() -> bool:
            return mpb.OUTREACH_EVENT_TYPE_STOP in p.events_for(placement_id)

        await p.until(stopped, what="a stop event")

        # Confirming again: nothing is waiting; a clear error and nothing changes.
        code, body = await dash.call("POST", "/candidates/confirm", {})
        assert code == 409, body
        assert body["error"]["reason"] == "NOTHING_TO_CONFIRM"
        assert set(await all_placements(p)) == set(placements)

    # Every step is in the integration service's audit trail.
    async with internal_channel(p.stack.integration_addr, INTERNAL_TOKEN) as channel:
        audit = await agrpc.AdminServiceStub(channel).ListAuditEvents(
            apb.ListAuditEventsRequest(tenant_id=TENANT, page_size=1000)
        )
    actions = [(e.action, e.subject_id) for e in audit.events]
    assert ("candidate.excluded", excluded) in actions
    assert ("candidate.dropped", paid) in actions
    assert ("candidate.balance_changed", part_paid) in actions
    assert ("candidates.confirmed", TENANT) in actions
    assert any(a == "candidates.staged" for a, _ in actions)
    assert any(a == "candidates.placed" for a, _ in actions)


async def test_confirm_each_time_keeps_newly_overdue_invoices_waiting(
    pipeline: Pipeline, emulator: Emulator
) -> None:
    p = pipeline
    async with aiohttp.ClientSession() as http:
        dash = Dashboard(p, http)
        await dash.backfill_done(p)
        code, body = await dash.call(
            "POST", "/candidates/confirm", {"future_mode": "confirm_each_time"}
        )
        assert code == 200, body
        assert body["mode"] == "PLACEMENT_INTAKE_MODE_CONFIRM_EACH_TIME"
        placed_before = set(await all_placements(p))
        assert placed_before == set(overdue_in_books(emulator))

        customer = next(iter(emulator.state.companies[REALM_ID].customers))
        invoice_id = await p.new_invoice(customer, "250.00")

        async def waiting() -> bool:
            staged = await dash.by_invoice()
            return invoice_id in staged

        await p.until(waiting, what="the new overdue invoice as a candidate")
        candidate = (await dash.by_invoice())[invoice_id]
        assert candidate["status"] == "CANDIDATE_STATUS_PENDING"
        assert candidate["balance"]["minor_units"] == "25000"
        assert await p.placement(invoice_id) is None

        code, body = await dash.call("POST", "/candidates/confirm", {})
        assert code == 200, body
        assert body["placed_count"] == "1"
        assert body["mode"] == "PLACEMENT_INTAKE_MODE_CONFIRM_EACH_TIME"  # kept
        placement = await p.placement(invoice_id)
        assert placement is not None
        assert placement.intake_channel == mpb.INTAKE_CHANNEL_ACCOUNTING_SYNC


async def test_bad_requests_are_refused_clearly_and_change_nothing(
    pipeline: Pipeline, emulator: Emulator
) -> None:
    p = pipeline
    async with aiohttp.ClientSession() as http:
        # Another tenant, connected to a company of its own without invoices.
        async with http.post(
            f"{emulator.url}/_emulator/companies",
            json={"realm_id": OTHER_REALM, "name": "Globex", "customers": 1, "invoices": 0},
        ) as resp:
            assert resp.status in (200, 201), await resp.text()
        await enable_tenant(p.stack, OTHER_TENANT)
        async with internal_channel(p.stack.integration_addr, INTERNAL_TOKEN) as channel:
            assert (await connect(channel, OTHER_TENANT, OTHER_REALM)).connected

        dash = Dashboard(p, http)
        other = Dashboard(p, http, OTHER_TENANT)
        await dash.backfill_done(p)
        before = await dash.candidates()
        invoice_id = before["candidates"][0]["invoice_id"]

        async def refused(d: Dashboard, path: str, body: Any, code: int, reason: str) -> None:
            status, reply = await d.call("POST", path, body)
            assert (status, reply["error"]["reason"]) == (code, reason), reply

        await refused(dash, "/candidates/999999/exclude", {}, 404, "CANDIDATE_NOT_FOUND")
        await refused(other, f"/candidates/{invoice_id}/exclude", {}, 404, "CANDIDATE_NOT_FOUND")
        await refused(
            dash, f"/candidates/{invoice_id}/include", {"reason": 7}, 400, "FIELD_INVALID"
        )
        await refused(dash, "/candidates/confirm", {"future_mode": "preview"}, 400, "FIELD_INVALID")
        status, reply = await dash.call("GET", "/candidates", status="bogus")
        assert status == 400, reply
        async with http.post(f"{dash.base}/candidates/{invoice_id}/exclude") as resp:
            assert resp.status == 401  # no JWT

        # Including a candidate that is already pending is a no-op, not an error.
        status, reply = await dash.call("POST", f"/candidates/{invoice_id}/include", {})
        assert status == 200
        assert reply["candidate"]["status"] == "CANDIDATE_STATUS_PENDING"
        assert await dash.candidates() == before

        # The other tenant confirms its (empty) preview; its second confirmation is refused.
        status, reply = await other.call("POST", "/candidates/confirm", {})
        assert status == 200, reply
        assert reply["placed_count"] == "0"
        await refused(other, "/candidates/confirm", {}, 409, "NOTHING_TO_CONFIRM")

        # Nothing of acme's changed: still all pending, nothing placed.
        assert await dash.candidates() == before
        assert await all_placements(p) == {}
        assert p.events == []

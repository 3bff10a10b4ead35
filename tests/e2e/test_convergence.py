"""Convergence: whatever happens to the webhooks (dropped, duplicated, reordered), one CDC
poll later every placement is exactly where perfect delivery leaves it.

Each example plays one random sequence of bookkeeper actions twice, on two identical
companies: once with perfect webhook delivery, once with webhooks dropped, duplicated and
reordered at random followed by one CDC poll. The placements of the two companies must
then match invoice for invoice (status and balance). Examples are expensive (real
processes of the pipeline, real PostgreSQL; 0.6 to 1.75 s each on the 2-core development
machine, depending on its load): ``make test`` runs 40 (25 to 70 s), enough to have found
each case below in most runs; ``AICOLLECT_CONVERGENCE_EXAMPLES`` sets the number, and
``scripts/soak_convergence.sh N`` runs thousands (see docs/matching.md).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from aicollect.integration.v1 import integration_service_pb2 as ipb
from aicollect.integration.v1 import integration_service_pb2_grpc as igrpc
from aicollect.matching.v1 import matching_service_pb2 as mpb
from aicollect.rpc.client import internal_channel
from tests.conftest import INTERNAL_TOKEN, Emulator
from tests.e2e.convergence_books import Company, control, diagnose, vanished_unseen
from tests.e2e.pipeline import Pipeline, running_pipeline
from tests.helpers.connections import connect
from tests.stack import confirm_first_backfill, enable_tenant

EXAMPLES = int(os.environ.get("AICOLLECT_CONVERGENCE_EXAMPLES", "40"))
# `make test` plays the same 40 scripts every run, so a red run always means a change broke
# something (the soak, scripts/soak_convergence.sh, draws new ones: that is where new cases
# are found, and each one found becomes an @example below).
DERANDOMIZE = "AICOLLECT_CONVERGENCE_EXAMPLES" not in os.environ
INVOICES = (("A", "400.00"), ("A", "250.00"), ("B", "900.00"))


@dataclass(frozen=True)
class Action:
    kind: str  # pay, pay_part, unapplied, void_pay, delete_pay, edit_pay, memo, void_invoice
    invoice: int  # index into the company's invoices
    payment: int  # index into the payments made so far (for void/delete/edit)


actions = st.lists(
    st.builds(
        Action,
        kind=st.sampled_from(
            [
                "pay",
                "pay_part",
                "unapplied",
                "void_pay",
                "delete_pay",
                "edit_pay",
                "memo",
                "void_invoice",
            ]
        ),
        invoice=st.integers(0, len(INVOICES) - 1),
        payment=st.integers(0, 5),
    ),
    min_size=2,
    max_size=7,
)


@pytest_asyncio.fixture
async def pipeline(engine: AsyncEngine, emulator: Emulator) -> AsyncIterator[Pipeline]:
    async with running_pipeline(engine, emulator) as p:
        yield p


async def _company(p: Pipeline, tag: str) -> Company:
    realm = str(9_000_000_000_000 + uuid.uuid4().int % 10**12)
    await control(p, "", "POST", "", {"realm_id": realm, "name": f"Co {tag}"})
    tenant = f"tenant-{realm}"
    customers = {}
    for name in sorted({c for c, _ in INVOICES}):
        made = await control(p, realm, "POST", "customers", {"display_name": f"Debtor {name}"})
        customers[name] = str(made["Customer"]["Id"])
    invoices = []
    for customer, amount in INVOICES:
        made = await control(
            p,
            realm,
            "POST",
            "invoices",
            {
                "customer_id": customers[customer],
                "lines": [{"amount": amount, "description": "Services"}],
                "txn_date": "2026-05-01",
                "due_date": "2026-06-01",
            },
        )
        invoices.append(str(made["Invoice"]["Id"]))
    await enable_tenant(p.stack, tenant)
    async with internal_channel(p.stack.integration_addr, INTERNAL_TOKEN) as channel:
        assert (await connect(channel, tenant, realm)).connected
    await confirm_first_backfill(p.stack, tenant)
    company = Company(realm, tenant, customers, invoices, [])
    for invoice_id in invoices:  # the backfill places them
        await _until_placed(p, company, invoice_id)
    return company


async def _until_placed(p: Pipeline, company: Company, invoice_id: str) -> None:
    async def placed() -> bool:
        reply = await p.matching.ListPlacements(
            mpb.ListPlacementsRequest(tenant_id=company.tenant, invoice_id=invoice_id)
        )
        return bool(reply.placements)

    await p.until(placed, within=20, what=f"placement of invoice {invoice_id}")


async def _play(p: Pipeline, company: Company, script: list[Action]) -> None:
    for action in script:
        invoice_id = company.invoices[action.invoice]
        customer = company.customers[INVOICES[action.invoice][0]]
        invoice = (await control(p, company.realm, "GET", f"invoices/{invoice_id}"))["Invoice"]
        balance = float(invoice["Balance"])
        if action.kind in ("pay", "pay_part", "memo") and balance > 0:
            amount = f"{balance if action.kind != 'pay_part' else round(balance / 2, 2):.2f}"
            if action.kind == "memo":
                memo = await control(
                    p,
                    company.realm,
                    "POST",
                    "credit-memos",
                    {"customer_id": customer, "amount": amount},
                )
                if "CreditMemo" in memo:
                    await control(
                        p,
                        company.realm,
                        "POST",
                        f"credit-memos/{memo['CreditMemo']['Id']}/apply",
                        {"invoice_id": invoice_id, "amount": amount},
                    )
                continue
            made = await control(
                p,
                company.realm,
                "POST",
                "payments",
                {
                    "customer_id": customer,
                    "amount": amount,
                    "lines": [{"invoice_id": invoice_id, "amount": amount}],
                },
            )
            if "Payment" in made:
                company.payments.append(str(made["Payment"]["Id"]))
        elif action.kind == "unapplied":
            made = await control(
                p,
                company.realm,
                "POST",
                "payments",
                {"customer_id": customer, "amount": f"{float(invoice['TotalAmt']):.2f}"},
            )
            if "Payment" in made:
                company.payments.append(str(made["Payment"]["Id"]))
        elif action.kind in ("void_pay", "delete_pay", "edit_pay") and company.payments:
            payment_id = company.payments[action.payment % len(company.payments)]
            if action.kind == "void_pay":
                await control(p, company.realm, "POST", f"payments/{payment_id}/void")
            elif action.kind == "delete_pay":
                await control(p, company.realm, "DELETE", f"payments/{payment_id}")
            else:
                current = (await control(p, company.realm, "GET", f"payments/{payment_id}")).get(
                    "Payment"
                )
                lines = (current or {}).get("Line") or []
                if lines:
                    linked = lines[0]["LinkedTxn"][0]["TxnId"]
                    await control(
                        p,
                        company.realm,
                        "PATCH",
                        f"payments/{payment_id}",
                        {"amount": "10.00", "lines": [{"invoice_id": linked, "amount": "10.00"}]},
                    )
        elif action.kind == "void_invoice":
            await control(p, company.realm, "POST", f"invoices/{invoice_id}/void")


async def _settled(p: Pipeline, company: Company) -> None:
    await p.webhooks_drained()

    async def idle() -> bool:
        async with internal_channel(p.stack.integration_addr, INTERNAL_TOKEN) as channel:
            status = await igrpc.IntegrationServiceStub(channel).GetConnectionStatus(
                ipb.GetConnectionStatusRequest(tenant_id=company.tenant)
            )
        return status.sync.inbox_backlog_count == 0 and status.sync.dead_letter_count == 0

    await p.until(idle, within=30, what="an empty inbox")


async def _cdc_poll(p: Pipeline, company: Company) -> None:
    async with internal_channel(p.stack.integration_addr, INTERNAL_TOKEN) as channel:
        stub = igrpc.IntegrationServiceStub(channel)
        before = (
            await stub.GetConnectionStatus(ipb.GetConnectionStatusRequest(tenant_id=company.tenant))
        ).sync.last_cdc_poll_time.ToNanoseconds()
        reply = await stub.SyncNow(
            ipb.SyncNowRequest(tenant_id=company.tenant, mode=ipb.SYNC_MODE_INCREMENTAL, actor="t")
        )
        assert reply.started

        async def polled() -> bool:
            status = await stub.GetConnectionStatus(
                ipb.GetConnectionStatusRequest(tenant_id=company.tenant)
            )
            return status.sync.last_cdc_poll_time.ToNanoseconds() > before

        await p.until(polled, within=30, what="a CDC poll")


async def _state(p: Pipeline, company: Company) -> dict[int, tuple[int, int]]:
    reply = await p.matching.ListPlacements(
        mpb.ListPlacementsRequest(tenant_id=company.tenant, page_size=100)
    )
    by_invoice = {pl.invoice_id: (pl.status, pl.balance.minor_units) for pl in reply.placements}
    return {i: by_invoice[invoice_id] for i, invoice_id in enumerate(company.invoices)}


async def _faults(p: Pipeline, **values: object) -> None:
    async with aiohttp.ClientSession() as http:
        method = http.delete if not values else http.post
        async with method(f"{p.emulator.url}/_emulator/faults", json=values or None) as r:
            assert r.status == 200


async def _perfect_and_lossy(
    p: Pipeline, script: list[Action], seed: int
) -> tuple[Company, dict[int, tuple[int, int]], Company, dict[int, tuple[int, int]]]:
    """Plays the script on two companies: perfect delivery, then lossy delivery plus one
    CDC poll. Returns each company with the state its placements end in."""
    await _faults(p)
    perfect = await _company(p, "perfect")
    lossy = await _company(p, "lossy")

    await _play(p, perfect, script)
    await _settled(p, perfect)
    expected = await _state(p, perfect)

    await _faults(
        p,
        seed=seed,
        webhook_drop_rate=0.4,
        webhook_duplicate_rate=0.3,
        webhook_reorder_rate=0.5,
    )
    await _play(p, lossy, script)
    await _settled(p, lossy)
    await _faults(p)
    await _cdc_poll(p, lossy)
    await _settled(p, lossy)
    actual = await _state(p, lossy)
    return perfect, expected, lossy, actual


@settings(
    max_examples=EXAMPLES,
    derandomize=DERANDOMIZE,
    deadline=None,
    # Each example costs seconds of real processes; report the first failure unshrunk.
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(script=actions, seed=st.integers(0, 2**16))
# Found by the soak: a credit applied to invoice 1 through a payment, then the invoice voided.
# The perfect run resolved it out of band from the invoice's drop and read the payment only
# once the void had taken the credit off: never corrected, a fee on money never paid.
@example(
    script=[
        Action("pay_part", 1, 5),
        Action("pay", 0, 0),
        Action("void_pay", 2, 4),
        Action("memo", 2, 2),
        Action("memo", 1, 5),
        Action("delete_pay", 0, 4),
        Action("void_invoice", 1, 0),
    ],
    seed=402,
)
# Found by the soak: unapplied money from the customer of invoice 2, voided soon after. The
# lossy run read it before the void (paused for review, never resumed by itself); the perfect
# run read it only voided (active). Allowed: a version gone before one run read it.
@example(
    script=[
        Action("void_invoice", 1, 4),
        Action("unapplied", 2, 3),
        Action("edit_pay", 2, 4),
        Action("void_invoice", 0, 2),
        Action("void_invoice", 1, 4),
        Action("void_invoice", 0, 2),
        Action("void_pay", 2, 3),
    ],
    seed=2,
)
# Found by the soak: payment 5 paid invoice 2 (900.00) in full and was voided; the perfect
# run read the invoice version that showed it, then the void, then the version owing again,
# and counted the rise a second time (1,800.00 owed). Played without timing in
# tests/services/matcher/decisions/test_unread_payment_gone.py.
@example(
    script=[
        Action("pay_part", 2, 5),
        Action("void_pay", 1, 0),
        Action("pay_part", 0, 5),
        Action("delete_pay", 2, 4),
        Action("pay", 2, 5),
        Action("pay_part", 0, 5),
        Action("void_pay", 0, 2),
    ],
    seed=58000,
)
# Found by the soak: a payment that resolved invoice 1 is deleted; a run whose matcher never
# read it differs only as convergence_books.vanished_unseen allows.
@example(
    script=[
        Action("void_pay", 2, 5),
        Action("pay", 2, 4),
        Action("pay_part", 2, 5),
        Action("pay", 1, 0),
        Action("pay", 0, 2),
        Action("edit_pay", 0, 5),
        Action("delete_pay", 0, 4),
    ],
    seed=4929,
)
# Found by the soak: the payment that resolved invoice 2 is edited down before one run reads
# it (allowed the same way).
@example(
    script=[
        Action("edit_pay", 0, 5),
        Action("pay", 0, 5),
        Action("pay_part", 0, 1),
        Action("pay_part", 2, 5),
        Action("edit_pay", 0, 5),
        Action("pay", 2, 5),
        Action("edit_pay", 0, 5),
    ],
    seed=374,
)
# Found by the convergence test (timing-dependent): the payment that resolved invoice 1 is
# edited down, and the invoice version the edit made is read before the edit; the edit was
# counted again (owing 48,000 on a 25,000 invoice). Played without timing in
# tests/services/matcher/decisions/test_reflected_edits.py. In about one run in six the
# lossy run reads invoice 1 while the payment still paid it in full (resolved, then flagged
# when the edit raised the balance) and the perfect run reads only the edited payment:
# allowed by convergence_books._changed_invoice_version_unseen.
@example(
    script=[
        Action("pay", 1, 0),
        Action("memo", 2, 0),
        Action("pay_part", 2, 3),
        Action("memo", 2, 4),
        Action("void_invoice", 2, 4),
        Action("edit_pay", 0, 5),
    ],
    seed=224,
)
# Found by a soak of 300: unapplied money (payment 4) that covered invoice 1 paused it in
# the run that read it; it was deleted before the other run read it (active).
@example(
    script=[
        Action("unapplied", 1, 1),
        Action("memo", 2, 0),
        Action("edit_pay", 0, 2),
        Action("delete_pay", 1, 1),
        Action("delete_pay", 1, 2),
        Action("void_pay", 0, 4),
        Action("pay", 0, 5),
    ],
    seed=1457,
)
# Found by a soak of 300: a credit memo applied to invoice 2, then the invoice voided. The
# perfect run read the void (paused for review: "invoice voided"), the lossy one the credit
# taken off first (flagged). Same balance, both stopped for a person: allowed.
@example(
    script=[
        Action("memo", 2, 1),
        Action("edit_pay", 0, 5),
        Action("void_pay", 2, 4),
        Action("void_invoice", 0, 1),
        Action("memo", 1, 0),
        Action("void_invoice", 2, 1),
        Action("pay_part", 2, 2),
    ],
    seed=511,
)
async def test_lossy_webhooks_plus_one_cdc_poll_converge(
    pipeline: Pipeline, script: list[Action], seed: int
) -> None:
    perfect, expected, lossy, actual = await _perfect_and_lossy(pipeline, script, seed)
    for i in list(expected):
        if expected[i] != actual[i] and await vanished_unseen(pipeline, (perfect, lossy), i):
            del expected[i], actual[i]
    if actual != expected:
        raise AssertionError(
            f"{script}: perfect {expected} lossy {actual}\n"
            + await diagnose(pipeline, perfect, [i for i in expected if expected[i] != actual[i]])
        )


ACTIVE = mpb.PLACEMENT_STATUS_ACTIVE
PAUSED = mpb.PLACEMENT_STATUS_PAUSED_PENDING_REVIEW
RESOLVED_OOB = mpb.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND
CASES = {
    # Two payments adding up to the total, in the second the invoice was placed: the second
    # is a payment (resolved out of band, audited), not "a change without a linked payment".
    "pay_half_then_rest": (
        [Action("pay_part", 0, 0), Action("pay", 0, 0)],
        {0: (RESOLVED_OOB, 0), 1: (ACTIVE, 25_000), 2: (ACTIVE, 90_000)},
    ),
    # Customer A has 400.00 unapplied and owes 200.00 on invoice 0: it may well be paid, so
    # invoice 0 pauses for review whatever order the matcher learns things in.
    "unapplied_covers_what_is_left": (
        [
            Action("unapplied", 1, 0),
            Action("pay_part", 0, 0),
            Action("void_pay", 2, 0),
            Action("unapplied", 0, 0),
            Action("void_invoice", 2, 0),
        ],
        {0: (PAUSED, 20_000), 1: (PAUSED, 25_000), 2: (PAUSED, 90_000)},
    ),
    # Half of invoice 1 paid, the rest cleared by a credit memo: paid out of band (for the
    # money paid), in whichever order the matcher reads the payment, the credit and the
    # invoice; not closed (which would drop the out-of-band fee on the money paid).
    "part_pay_then_credit_memo": (
        [Action("pay_part", 1, 0), Action("memo", 1, 0)],
        {0: (ACTIVE, 40_000), 1: (RESOLVED_OOB, 0), 2: (ACTIVE, 90_000)},
    ),
    # Invoice 0 paid by two payments (and other invoices paid meanwhile): paid out of band.
    "part_then_rest_among_others": (
        [
            Action("delete_pay", 1, 0),
            Action("void_pay", 0, 0),
            Action("pay", 2, 0),
            Action("pay_part", 0, 0),
            Action("pay", 2, 0),
            Action("pay", 0, 0),
            Action("pay_part", 1, 0),
        ],
        {0: (RESOLVED_OOB, 0), 1: (ACTIVE, 12_500), 2: (RESOLVED_OOB, 0)},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_found_cases_end_where_the_rules_say_both_ways(pipeline: Pipeline, case: str) -> None:
    script, wanted = CASES[case]
    for seed in (1, 2):
        perfect, expected, lossy, actual = await _perfect_and_lossy(pipeline, script, seed)
        assert (expected, actual) == (wanted, wanted), f"{case} (seed {seed})"
        for company in (perfect, lossy):
            # Every payment that reduced invoice 0 left its audit entry.
            (placement,) = (
                await pipeline.matching.ListPlacements(
                    mpb.ListPlacementsRequest(
                        tenant_id=company.tenant, invoice_id=company.invoices[0]
                    )
                )
            ).placements
            audit = await pipeline.matching.ListAuditEvents(
                mpb.ListAuditEventsRequest(
                    tenant_id=company.tenant, placement_id=placement.placement_id, page_size=100
                )
            )
            mentioned = {e.details.get("payment_id", "") for e in audit.events}
            for e in audit.events:
                mentioned.update(json.loads(e.details.get("payment_ids", "[]")))
            paid_here = [
                pid
                for pid in company.payments
                if await _links(pipeline, company, pid, company.invoices[0])
            ]
            assert set(paid_here) <= mentioned, f"{case}: audit {mentioned} payments {paid_here}"


async def _links(p: Pipeline, company: Company, payment_id: str, invoice_id: str) -> bool:
    payment = (await control(p, company.realm, "GET", f"payments/{payment_id}")).get("Payment")
    for line in (payment or {}).get("Line") or []:
        if any(str(t.get("TxnId")) == invoice_id for t in line.get("LinkedTxn") or []):
            return True
    return False

"""Benchmark: our Xero backfill of the peers' organisation, and payment-to-stop latency.

    .venv/bin/python -m bench.xero_ours [--invoices 100000] [--contacts 5000] [--payments 40]
    .venv/bin/python -m bench.xero_ours --invoices 20000 --backfill-only   # the backfill alone

The real processes as ``aicollect run`` starts them (embedded PostgreSQL or
``AICOLLECT_BENCH_DATABASE_URL``, the Xero emulator with Xero's limits on, the matcher, the
integration service, the gateway). The organisation is the one ``bench/xero_peers.py``
gives the peers (same tenant id, seed, size, 30 % overdue). The tenant connects through
the gateway's Xero OAuth callback; the integration's scheduler runs the backfill, which
stages the overdue invoices as candidates; the creditor confirms them, and they become
placements. Measured: the backfill's own time, the Accounting API calls and 429s on the
organisation (the emulator's counters), whether the minute limit and the daily budget
held, and one placement per overdue invoice.

Then, ``--settle`` seconds after the confirmation (whose calls may have used the minute's
budget), ``--payments`` placed invoices are paid in full in the emulator, one every
``--interval`` seconds (inside Xero's 60 calls a minute, as each costs us one re-read). Each
latency runs from just before the bookkeeper's request to the STOP event on the matcher's
outreach stream: Xero's signed webhook, the gateway, the inbox, the re-read of the invoice,
the matcher's decision, the outbox, the stream. Printed with p50/p99 and written to
``bench/results/xero_ours.json``.

With ``--during`` the payments are made instead while a large confirmation is still
placing, on the first placements it made: each payment's re-read then competes with the
confirmation's re-reads for the organisation's minute.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from typing import Any

import aiohttp

from aicollect.integration.v1 import admin_service_pb2 as apb
from aicollect.integration.v1 import integration_service_pb2 as pb
from aicollect.integration.v1 import integration_service_pb2_grpc as igrpc
from aicollect.matching.v1 import matching_service_pb2 as mpb
from aicollect.matching.v1 import matching_service_pb2_grpc as mgrpc
from aicollect.rpc.client import internal_channel
from bench._stack import (
    admin_call,
    bearer,
    percentile,
    running_stack,
    until_confirmed,
    write_result,
)
from bench.backfill import peak_rss_mb, pid_of
from bench.peer_emulator import Emulator
from bench.xero_peers import DAILY_LIMIT, TENANT, call_counts, create_organisation

OURS = "bench-xero"  # our tenant (the creditor)


async def connect(stack: Any, http: aiohttp.ClientSession) -> None:
    """The creditor enables Xero and connects the organisation through the gateway."""
    await admin_call(
        stack,
        "SetTenantSettings",
        apb.SetTenantSettingsRequest(
            tenant_id=OURS, provider_enabled={"xero": True}, actor="bench", reason="benchmark"
        ),
    )
    base = f"{stack.gateway_url}/v1/integrations/xero"
    async with http.post(
        f"{base}/connect-url", headers={"Authorization": bearer(stack, OURS)}
    ) as resp:
        authorize = (await resp.json())["authorize_url"]
    consent = f"{authorize}&emulator_decision=allow&emulator_tenants={TENANT}"
    async with http.get(consent, allow_redirects=False) as resp:
        callback = resp.headers["Location"]
    async with http.get(callback, allow_redirects=False) as resp:
        landed = resp.headers.get("Location", "")
    if "connected" not in landed:
        raise SystemExit(f"could not connect the benchmark tenant: {landed}")


async def wait_backfill(stack: Any, within: float) -> tuple[pb.BackfillProgress, list[str]]:
    """The backfill once completed (or as it stands after ``within`` seconds), and the
    errors of the attempts that failed on the way (each resumes from its checkpoint)."""
    addr = stack.env["AICOLLECT_INTEGRATION_ADDR"]
    failures: list[str] = []
    deadline = time.monotonic() + within
    async with internal_channel(addr, stack.env["AICOLLECT_INTERNAL_TOKEN"]) as channel:
        integration = igrpc.IntegrationServiceStub(channel)
        while True:
            status = await integration.GetConnectionStatus(
                pb.GetConnectionStatusRequest(tenant_id=OURS, provider=pb.PROVIDER_XERO)
            )
            backfill = status.backfill
            if backfill.phase == pb.BACKFILL_PHASE_FAILED:
                error = f"{backfill.finish_time.ToJsonString()} {backfill.last_error}"
                if error not in failures:
                    failures.append(error)
            if backfill.phase == pb.BACKFILL_PHASE_COMPLETED or time.monotonic() > deadline:
                return backfill, failures
            await asyncio.sleep(0.2)


async def placements(
    stub: Any, statuses: tuple[mpb.PlacementStatus.ValueType, ...] = ()
) -> list[tuple[str, str]]:
    """(Xero invoice id, placement id) of every placement of our tenant in ``statuses``
    (any status when empty)."""
    out: list[tuple[str, str]] = []
    token = ""
    while True:
        reply = await stub.ListPlacements(
            mpb.ListPlacementsRequest(
                tenant_id=OURS, statuses=list(statuses), page_size=1000, page_token=token
            )
        )
        out.extend((p.invoice_id, p.placement_id) for p in reply.placements)
        token = reply.next_page_token
        if not token:
            return out


async def active_placements(stub: Any) -> dict[str, str]:
    """Xero invoice id -> placement id, every active placement of our tenant."""
    return dict(await placements(stub, (mpb.PLACEMENT_STATUS_ACTIVE,)))


async def payment_latency(
    stack: Any, emu: Emulator, placed: dict[str, str], payments: int, interval: float
) -> dict[str, Any]:
    channel = internal_channel(
        stack.env["AICOLLECT_MATCHER_ADDR"], stack.env["AICOLLECT_INTERNAL_TOKEN"]
    )
    stub = mgrpc.MatchingServiceStub(channel)
    stops: dict[str, float] = {}
    sent: dict[str, float] = {}
    every_one_stopped = asyncio.Event()

    async def consume() -> None:
        async for item in stub.StreamOutreachEvents(mpb.StreamOutreachEventsRequest()):
            if item.event.type == mpb.OUTREACH_EVENT_TYPE_STOP:
                stops.setdefault(item.event.placement_id, time.monotonic())
                if len(sent) == payments and all(p in stops for p in sent):
                    every_one_stopped.set()

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0.5)
    payments = min(payments, len(placed))
    before = await emu.stats()
    for invoice_id, placement_id in list(placed.items())[:payments]:
        sent[placement_id] = time.monotonic()
        await emu.control("POST", f"/organisations/{TENANT}/payments", {"invoice_id": invoice_id})
        await asyncio.sleep(interval)
    if not all(p in stops for p in sent):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(every_one_stopped.wait(), 120)
    counts = call_counts(before, await emu.stats())
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)
    await channel.close(None)
    latencies = [stops[p] - t for p, t in sent.items() if p in stops]
    return {
        "payments": len(sent),
        "stopped": len(latencies),
        "missing": len(sent) - len(latencies),
        "interval_s": interval,
        "p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1) if latencies else None,
        "api_calls_during": counts["api_calls"],
        "http_429_during": counts["http_429"],
    }


async def pay_while_confirming(
    stack: Any, emu: Emulator, args: argparse.Namespace, confirming: asyncio.Task[None]
) -> dict[str, Any] | None:
    """Payments on the first placements made, while the confirmation still places the
    rest: each payment's re-read competes with the confirmation's for the organisation's
    minute (the budget keeps a tenth of it, and a fifth of the concurrency, for payments
    and webhooks, and serves them first)."""
    async with internal_channel(
        stack.env["AICOLLECT_MATCHER_ADDR"], stack.env["AICOLLECT_INTERNAL_TOKEN"]
    ) as channel:
        stub = mgrpc.MatchingServiceStub(channel)
        while not confirming.done():
            placed = await active_placements(stub)
            if len(placed) >= args.payments:
                latency = await payment_latency(stack, emu, placed, args.payments, args.interval)
                latency["while_confirming"] = not confirming.done()
                return latency
            await asyncio.sleep(1.0)
    print("the confirmation ended before enough placements existed to pay", flush=True)
    return None


def path_counts(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    """The organisation's API calls between two emulator stats, by kind of path
    (``Contacts?IDs``, ``Contacts?page``, ``Invoices?page`` ...)."""

    def of(stats: dict[str, Any]) -> dict[str, int]:
        found: dict[str, int] = stats.get("api_requests_by_path", {}).get(TENANT, {})
        return found

    start, end = of(before), of(after)
    return {
        kind: n - start.get(kind, 0) for kind, n in sorted(end.items()) if n > start.get(kind, 0)
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    load_before = [round(x, 2) for x in os.getloadavg()]
    extra = {"AICOLLECT_SYNC_TICK_SECONDS": "1", "AICOLLECT_XERO_EMULATOR_PORT": "0"}
    async with running_stack(extra_env=extra) as stack:
        assert stack.xero_emulator_url is not None
        proc = stack.children["xero-emulator"].proc
        assert proc is not None
        jar = aiohttp.CookieJar(unsafe=True)  # the gateway's browser-binding cookie
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            emu = Emulator(stack.xero_emulator_url, proc, http)
            summary = await create_organisation(emu, args.invoices, args.contacts)
            before = await emu.stats()
            pids = {name: pid_of(stack, name) for name in ("integration", "matcher")}
            await connect(stack, http)
            backfill, failures = await wait_backfill(stack, args.time_limit)
            after_backfill = await emu.stats()
            if failures:
                print(f"attempts that failed and resumed: {failures}", flush=True)
            if backfill.phase != pb.BACKFILL_PHASE_COMPLETED:
                raise SystemExit(f"the backfill did not complete: {failures}")
            seconds = (
                backfill.finish_time.ToDatetime() - backfill.start_time.ToDatetime()
            ).total_seconds()
            print(
                f"backfill: {backfill.candidates_staged:,} candidates from "
                f"{backfill.invoices_seen:,} overdue invoices in {seconds:.2f} s",
                flush=True,
            )
            backfill_calls = call_counts(before, after_backfill)
            result: dict[str, Any] = {
                "tool": "ai-collect Xero backfill",
                "organisation": {"today": summary["today"], **summary["counts"]},
                "invoices": args.invoices,
                "seconds": round(seconds, 3),
                **backfill_calls,
                "calls_by_path": path_counts(before, after_backfill),
                "failed_attempts_resumed": failures,
                "invoices_seen": backfill.invoices_seen,
                "candidates_staged": backfill.candidates_staged,
                "load_average_1_5_15_before": load_before,
            }
            if args.backfill_only:
                return {**result, "load_average_1_5_15_after": _load_average()}
            # The creditor confirms: the candidates become placements.
            confirm_started = time.perf_counter()
            async with http.post(
                f"{stack.gateway_url}/v1/integrations/xero/candidates/confirm",
                headers={"Authorization": bearer(stack, OURS)},
                json={"future_mode": "automatic"},
                timeout=aiohttp.ClientTimeout(total=args.time_limit),
            ) as resp:
                confirmed = await resp.json()
                if resp.status != 200:  # recorded with the figures so far, not raised
                    print(f"the confirmation failed: {confirmed}", flush=True)
                    confirmed = {"error": confirmed, "status": resp.status}
            during = None
            if "confirmation" in confirmed:  # placed in the background: wait until done
                confirm_answered_s = time.perf_counter() - confirm_started
                waiting = asyncio.create_task(
                    until_confirmed(
                        http,
                        f"{stack.gateway_url}/v1/integrations/xero",
                        {"Authorization": bearer(stack, OURS)},
                        confirmed,
                        time.monotonic() + args.time_limit,
                    )
                )
                if args.during and args.payments:
                    # Debtors pay while the confirmation's re-reads use the bulk budget.
                    during = await pay_while_confirming(stack, emu, args, waiting)
                try:
                    await waiting
                except SystemExit as exc:  # recorded with the figures so far, not raised
                    print(str(exc), flush=True)
                confirmed["answered_s"] = round(confirm_answered_s, 3)
            confirm_seconds = time.perf_counter() - confirm_started
            after_confirm = await emu.stats()
            peaks = {name: round(peak_rss_mb(pid), 1) for name, pid in pids.items()}
            async with internal_channel(
                stack.env["AICOLLECT_MATCHER_ADDR"], stack.env["AICOLLECT_INTERNAL_TOKEN"]
            ) as channel:
                stub = mgrpc.MatchingServiceStub(channel)
                placed = await active_placements(stub)
                # Any status: with --during the payments resolved some while it placed.
                every = await placements(stub)
            overdue = round(args.invoices * 0.3)
            latency = during
            if args.payments and placed and not args.during:
                # The confirmation may have used this minute's budget; payments measured
                # right after it would wait for the next window.
                await asyncio.sleep(args.settle)
                latency = await payment_latency(stack, emu, placed, args.payments, args.interval)
                latency["settled_s_after_confirmation"] = args.settle
    confirm_calls = call_counts(after_backfill, after_confirm)
    return {
        **result,
        "confirm": {
            "seconds": round(confirm_seconds, 3),
            "placed": int(confirmed.get("placed_count", 0)),
            "error": confirmed.get("error"),
            **confirm_calls,
            "calls_by_path": path_counts(after_backfill, after_confirm),
        },
        "daily_budget_held_backfill_and_confirm": backfill_calls["api_calls"]
        + confirm_calls["api_calls"]
        <= DAILY_LIMIT,
        "placements": len(every),
        "active_placements": len(placed),
        "exactly_one_placement_per_overdue_invoice": len(every) == overdue
        and len({invoice_id for invoice_id, _ in every}) == overdue,
        "peak_rss_mb": peaks,
        "payment_to_stop": latency,
        "load_average_1_5_15_after": _load_average(),
    }


def _load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--contacts", type=int, default=5_000)
    parser.add_argument("--payments", type=int, default=40)
    parser.add_argument("--interval", type=float, default=1.5, help="seconds between payments")
    parser.add_argument(
        "--settle", type=float, default=65, help="seconds between confirmation and payments"
    )
    parser.add_argument("--time-limit", type=float, default=1800)
    parser.add_argument(
        "--during",
        action="store_true",
        help="pay while a large confirmation is still placing (its re-reads use the budget)",
    )
    parser.add_argument(
        "--backfill-only",
        action="store_true",
        help="stop after the backfill (no confirmation, no payments)",
    )
    args = parser.parse_args()
    result = asyncio.run(run(args))
    for key, value in result.items():
        print(f"{key}: {value}")
    path = write_result("xero_ours", result)
    print(f"written to {path}")
    if args.backfill_only:
        return 0 if result["candidates_staged"] == round(args.invoices * 0.3) else 1
    ok = result["exactly_one_placement_per_overdue_invoice"]
    stops = result["payment_to_stop"]
    return 0 if ok and (not args.payments or (stops and not stops["missing"])) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: from a bookkeeper's payment in QBO to the stop event on StreamOutreachEvents.

    .venv/bin/python -m bench.e2e_latency [--rates 1,50,200] [--seconds 10] [--realms 1]

The real processes run as ``aicollect run`` starts them (embedded PostgreSQL or
``AICOLLECT_BENCH_DATABASE_URL``, the emulator, matcher, integration, gateway). A company
with enough overdue invoices is connected and backfilled; a consumer holds the matcher's
outreach stream open, as the outreach service would. Then, at each rate, payments that
settle one invoice each are recorded in the emulator on a fixed schedule. For each one the
latency runs from just before the bookkeeper's request to the moment the consumer receives
the placement's STOP event: Intuit's webhook (emulator batching off), the gateway, the
inbox, the read of the payment from QBO, the matcher's decision, the outbox, the stream.

With ``--realms N`` the payments are spread over N connected companies (round robin): one
company's events are processed in order by one worker, and Intuit itself allows a company
500 requests a minute, so 200 payments a second is a many-company load.

Prints p50 / p99 per rate and writes ``bench/results/e2e_latency.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from typing import Any

import aiohttp

from aicollect.matching.v1 import matching_service_pb2 as mpb
from aicollect.matching.v1 import matching_service_pb2_grpc as mgrpc
from aicollect.rpc.client import internal_channel
from bench._cpu import (
    STATS_SETTLE_S,
    CpuMeter,
    describe,
    load_average,
    per_unit_ms,
    transactions,
)
from bench._stack import (
    confirm_candidates,
    connect_tenant,
    create_company,
    percentile,
    running_stack,
    write_result,
)


def realm_of(n: int) -> str:
    return f"91304{n:011d}"


def tenant_of(n: int) -> str:
    return f"latency-tenant-{n}"


async def placements_by_invoice(stub: Any, n: int) -> dict[str, tuple[str, str, int]]:
    """invoice id -> (placement id, customer id, balance in cents), every active placement."""
    out: dict[str, tuple[str, str, int]] = {}
    token = ""
    while True:
        reply = await stub.ListPlacements(
            mpb.ListPlacementsRequest(
                tenant_id=tenant_of(n),
                statuses=[mpb.PLACEMENT_STATUS_ACTIVE],
                page_size=1000,
                page_token=token,
            )
        )
        for p in reply.placements:
            out[p.invoice_id] = (p.placement_id, p.customer_id, p.balance.minor_units)
        token = reply.next_page_token
        if not token:
            return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="1,50,200")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--realms", type=int, default=1)
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    realms = max(1, args.realms)
    needed = (int(sum(max(5, r * args.seconds) for r in rates)) + 50) // realms + 20

    async with running_stack(
        extra_env={"AICOLLECT_QBO_REQUESTS_PER_MINUTE": "0", "AICOLLECT_QBO_MAX_CONCURRENT": "0"}
    ) as stack:
        assert stack.emulator_url is not None
        async with aiohttp.ClientSession() as http:
            await http.put(
                f"{stack.emulator_url}/_emulator/faults",
                json={"requests_per_minute": None, "max_concurrent": None},
            )
        for n in range(realms):
            await create_company(
                stack,
                realm_id=realm_of(n),
                customers=max(20, needed // 4),
                invoices=needed,
                overdue=1.0,
            )
            await connect_tenant(stack, tenant_of(n), realm_of(n))
            await confirm_candidates(stack, tenant_of(n))
        channel = internal_channel(
            stack.env["AICOLLECT_MATCHER_ADDR"], stack.env["AICOLLECT_INTERNAL_TOKEN"]
        )
        stub = mgrpc.MatchingServiceStub(channel)
        per_realm: list[list[tuple[str, tuple[str, str, int]]]] = []
        for n in range(realms):
            deadline = time.monotonic() + 300
            placed: dict[str, tuple[str, str, int]] = {}
            while time.monotonic() < deadline:
                placed = await placements_by_invoice(stub, n)
                if len(placed) >= needed - 20:
                    break
                await asyncio.sleep(1)
            per_realm.append(list(placed.items()))
        # Round robin over the companies: (realm index, invoice id, placement facts).
        pool = [
            (n, p[i])
            for i in range(max(len(p) for p in per_realm))
            for n, p in enumerate(per_realm)
            if i < len(p)
        ]
        print(f"{len(pool)} placements ready in {realms} companies", flush=True)

        stops: dict[str, float] = {}
        arrived = asyncio.Event()

        async def consume() -> None:
            call = stub.StreamOutreachEvents(mpb.StreamOutreachEventsRequest())
            async for item in call:
                if item.event.type == mpb.OUTREACH_EVENT_TYPE_STOP:
                    stops.setdefault(item.event.placement_id, time.monotonic())
                    arrived.set()

        consumer = asyncio.create_task(consume())
        await asyncio.sleep(0.5)
        results = []
        connector = aiohttp.TCPConnector(limit=256)
        async with aiohttp.ClientSession(connector=connector) as http:
            for rate in rates:
                count = max(5, int(rate * args.seconds))
                batch, pool = pool[:count], pool[count:]
                sent: dict[str, float] = {}

                async def pay(
                    at: float,
                    n: int,
                    invoice_id: str,
                    info: tuple[str, str, int],
                    sent: dict[str, float] = sent,
                ) -> None:
                    await asyncio.sleep(max(0.0, at - time.monotonic()))
                    placement_id, customer_id, cents = info
                    amount = f"{cents / 100:.2f}"
                    sent[placement_id] = time.monotonic()
                    async with http.post(
                        f"{stack.emulator_url}/_emulator/companies/{realm_of(n)}/payments",
                        json={
                            "customer_id": customer_id,
                            "amount": amount,
                            "lines": [{"invoice_id": invoice_id, "amount": amount}],
                        },
                    ) as resp:
                        if resp.status not in (200, 201):
                            raise SystemExit(f"emulator refused a payment: {await resp.text()}")

                meter = CpuMeter(stack)
                await asyncio.sleep(STATS_SETTLE_S)
                tx_before = await transactions(stack.database_url)
                before = meter.snapshot()
                start = time.monotonic() + 0.2
                await asyncio.gather(
                    *(
                        pay(start + i / rate, n, inv, info)
                        for i, (n, (inv, info)) in enumerate(batch)
                    )
                )
                wait_until = time.monotonic() + 60
                while time.monotonic() < wait_until and not all(p in stops for p in sent):
                    arrived.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(arrived.wait(), 1.0)
                latencies = [stops[p] - t for p, t in sent.items() if p in stops]
                missing = len(sent) - len(latencies)
                # CPU per payment, webhook to STOP, per process (emulator and load excluded).
                cpu = per_unit_ms(CpuMeter.since(before, meter.snapshot()), len(latencies))
                load = load_average()
                await asyncio.sleep(STATS_SETTLE_S)
                # Every process's transactions (commits and rollbacks) per payment.
                tx = (await transactions(stack.database_url) - tx_before - 1) / max(
                    1, len(latencies)
                )
                step = {
                    "rate_per_s": rate,
                    "payments": len(sent),
                    "stopped": len(latencies),
                    "missing": missing,
                    "p50_ms": round(percentile(latencies, 50) * 1000, 1),
                    "p99_ms": round(percentile(latencies, 99) * 1000, 1),
                    "max_ms": round(max(latencies) * 1000, 1) if latencies else None,
                    "cpu_ms_per_payment": cpu,
                    "transactions_per_payment": round(tx, 2),
                    "load_average": load,
                }
                results.append(step)
                print(
                    f"  {rate:>5.0f} payments/s: {len(latencies)}/{len(sent)} stopped, "
                    f"p50 {step['p50_ms']} ms, p99 {step['p99_ms']} ms, max {step['max_ms']} ms; "
                    f"CPU ms per payment: {describe(cpu)}; "
                    f"transactions per payment {tx:.1f}; load average {load}",
                    flush=True,
                )
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        await channel.close(None)
    path = write_result("e2e_latency", {"realms": realms, "steps": results})
    print(f"written to {path}")


if __name__ == "__main__":
    asyncio.run(main())

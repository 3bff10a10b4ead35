"""Benchmark: the payment storm on one replica of each process, then on two of each.

    .venv/bin/python -m bench.replicas_storm [--replicas 1,2] [--rate 50] [--payments 500]
        [--companies 10]

For each replica count the real processes run as ``aicollect run --replicas N`` starts
them (embedded PostgreSQL or ``AICOLLECT_BENCH_DATABASE_URL``, the emulator with Intuit's
limits enforced, N gateways behind the round-robin balancer, N integration services, N
matchers). ``--companies`` companies are connected and confirmed; a consumer holds the
outreach stream open. Then ``--payments`` payments, each settling one invoice in full,
spread over the companies, are recorded in the emulator at ``--rate`` a second. Measured,
per replica count: payments/s (payments whose STOP arrived, over the time from the first
payment to the last STOP), payment-to-STOP p50 / p99, CPU milliseconds per payment per
process kind (all replicas of a kind together; the emulator, the balancer and the load
generator excluded), Intuit's 429s, and the load average.

Prints one line per replica count and writes ``bench/results/replicas_storm.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import aiohttp

from bench._cpu import STATS_SETTLE_S, CpuMeter, describe, load_average, per_unit_ms
from bench._replicas import OutreachTail, connect_companies, storm, targets
from bench._stack import percentile, running_stack, write_result


async def measure(replicas: int, rate: float, payments: int, companies: int) -> dict[str, Any]:
    per_company = -(-payments // companies)
    async with running_stack(replicas=replicas) as stack:
        assert stack.emulator_url is not None
        await connect_companies(stack, companies, per_company + 5)
        chosen = (await targets(stack, companies, per_company, part_every=0))[:payments]
        tail = OutreachTail(stack)
        consumer = asyncio.create_task(tail.run())
        try:
            meter = CpuMeter(stack)
            await asyncio.sleep(STATS_SETTLE_S)
            before = meter.snapshot()
            sent = await storm(stack, chosen, rate)
            await tail.wait_stops(list(sent), within=300)
            spent = CpuMeter.since(before, meter.snapshot())
            load = load_average()
        finally:
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{stack.emulator_url}/_emulator/stats") as resp,
        ):
            throttled = sum(((await resp.json()).get("throttled") or {}).values())
    latencies = [tail.first_stop[p] - t for p, t in sent.items() if p in tail.first_stop]
    stopped = len(latencies)
    span = max(tail.first_stop[p] for p in sent if p in tail.first_stop) - min(sent.values())
    return {
        "replicas": replicas,
        "offered_per_s": rate,
        "payments": len(sent),
        "stopped": stopped,
        "payments_per_s": round(stopped / span, 1) if stopped else 0.0,
        "p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "cpu_ms_per_payment": per_unit_ms(spent, stopped),
        "intuit_429s": throttled,
        "load_average": load,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", default="1,2")
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--payments", type=int, default=500)
    parser.add_argument("--companies", type=int, default=10)
    args = parser.parse_args()
    runs = []
    for replicas in (int(r) for r in args.replicas.split(",")):
        started = time.monotonic()
        run = await measure(replicas, args.rate, args.payments, args.companies)
        runs.append(run)
        print(
            f"  {replicas} of each: {run['stopped']}/{run['payments']} stopped at "
            f"{run['payments_per_s']} payments/s (offered {args.rate:g}/s), "
            f"p50 {run['p50_ms']} ms, p99 {run['p99_ms']} ms; CPU ms per payment: "
            f"{describe(run['cpu_ms_per_payment'])}; Intuit 429s {run['intuit_429s']}; "
            f"load average {run['load_average']} ({time.monotonic() - started:.0f} s)",
            flush=True,
        )
    path = write_result("replicas_storm", {"companies": args.companies, "runs": runs})
    print(f"written to {path}")


if __name__ == "__main__":
    asyncio.run(main())

"""Simulation: 10,000 connected realms' CDC poll schedule on one integration replica.

    .venv/bin/python -m bench.cdc_schedule [--realms 10000] [--measure 40]

First the real cost of a CDC poll is measured: ``--measure`` companies are connected to the
real multi-process system (the emulator stands in for Intuit) and each gets an immediate
incremental sync (``SyncNow``); the integration process's CPU time and wall time per poll
and the Intuit requests per poll are taken from the process and the emulator. Then the
schedule of ``--realms`` realms, each polled every ``AICOLLECT_CDC_INTERVAL_SECONDS``
(900 s), is simulated event by event over four hours with the replica's concurrency
(``AICOLLECT_SYNC_MAX_JOBS``): how busy the replica is, how late polls start, and how many
requests go to Intuit.

Prints the figures and writes ``bench/results/cdc_schedule.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import random
import time

import aiohttp
import psutil

from aicollect.integration.v1 import integration_service_pb2 as ipb
from aicollect.integration.v1 import integration_service_pb2_grpc as igrpc
from aicollect.rpc.client import internal_channel
from bench._stack import connect_tenant, create_company, percentile, running_stack, write_result


async def measure(companies: int) -> dict[str, float]:
    async with running_stack(extra_env={"AICOLLECT_SYNC_MAX_JOBS": "4"}) as stack:
        assert stack.emulator_url is not None
        tenants = []
        for n in range(companies):
            realm = f"91306{n:011d}"
            await create_company(stack, realm_id=realm, customers=10, invoices=40, overdue=0.3)
            await connect_tenant(stack, f"cdc-{n}", realm)
            tenants.append(f"cdc-{n}")
        await asyncio.sleep(5)  # let the backfills finish
        addr, token = stack.env["AICOLLECT_INTEGRATION_ADDR"], stack.env["AICOLLECT_INTERNAL_TOKEN"]
        child = stack.children["integration"].proc
        assert child is not None
        process = psutil.Process(child.pid)
        async with aiohttp.ClientSession() as http:

            async def requests_so_far() -> int:
                async with http.get(f"{stack.emulator_url}/_emulator/stats") as resp:
                    stats = await resp.json()
                return int(sum(stats.get("api_requests", {}).values()))

            before_requests = await requests_so_far()
            before_cpu = sum(process.cpu_times()[:2])
            started = time.monotonic()
            async with internal_channel(addr, token) as channel:
                stub = igrpc.IntegrationServiceStub(channel)
                previous = {}
                for tenant in tenants:
                    status = await stub.GetConnectionStatus(
                        ipb.GetConnectionStatusRequest(tenant_id=tenant)
                    )
                    previous[tenant] = status.sync.last_cdc_poll_time.ToNanoseconds()
                for tenant in tenants:
                    await stub.SyncNow(
                        ipb.SyncNowRequest(
                            tenant_id=tenant, mode=ipb.SYNC_MODE_INCREMENTAL, actor="bench"
                        )
                    )
                pending = set(tenants)
                while pending and time.monotonic() - started < 120:
                    for tenant in list(pending):
                        status = await stub.GetConnectionStatus(
                            ipb.GetConnectionStatusRequest(tenant_id=tenant)
                        )
                        if status.sync.last_cdc_poll_time.ToNanoseconds() > previous[tenant]:
                            pending.discard(tenant)
                    await asyncio.sleep(0.2)
            wall = time.monotonic() - started
            cpu = sum(process.cpu_times()[:2]) - before_cpu
            requests = await requests_so_far() - before_requests
    polled = len(tenants) - len(pending)
    return {
        "polls": polled,
        "cpu_s_per_poll": cpu / max(polled, 1),
        "wall_s_per_poll_at_4_jobs": wall * 4 / max(polled, 1),
        "intuit_requests_per_poll": requests / max(polled, 1),
    }


def simulate(
    realms: int, interval: float, jobs: int, poll_s: float, hours: float = 4.0, seed: int = 7
) -> dict[str, float]:
    """Event simulation: each realm becomes due every ``interval`` after its last poll
    started; ``jobs`` polls run at once; a poll occupies a slot for ``poll_s``."""
    rng = random.Random(seed)
    due = [(rng.uniform(0, interval), n) for n in range(realms)]
    heapq.heapify(due)
    free_at = [0.0] * jobs
    heapq.heapify(free_at)
    horizon = hours * 3600
    delays: list[float] = []
    busy = 0.0
    polls = 0
    while due and due[0][0] < horizon:
        when, realm = heapq.heappop(due)
        slot = heapq.heappop(free_at)
        start = max(when, slot)
        duration = poll_s * rng.uniform(0.7, 1.3)
        heapq.heappush(free_at, start + duration)
        delays.append(start - when)
        busy += duration
        polls += 1
        heapq.heappush(due, (start + interval, realm))
    return {
        "polls": polls,
        "polls_per_s": polls / horizon,
        "slot_utilisation": busy / (horizon * jobs),
        "start_delay_p50_s": percentile(delays, 50),
        "start_delay_p99_s": percentile(delays, 99),
        "start_delay_max_s": max(delays) if delays else 0.0,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realms", type=int, default=10_000)
    parser.add_argument("--measure", type=int, default=40)
    parser.add_argument("--interval", type=float, default=900.0)
    parser.add_argument("--jobs", type=int, default=4)
    args = parser.parse_args()
    cost = await measure(args.measure)
    print(
        f"measured on {cost['polls']:.0f} real polls: {cost['cpu_s_per_poll'] * 1000:.1f} ms CPU "
        f"and {cost['wall_s_per_poll_at_4_jobs'] * 1000:.0f} ms of a job slot per poll, "
        f"{cost['intuit_requests_per_poll']:.2f} Intuit requests per poll",
        flush=True,
    )
    sim = simulate(args.realms, args.interval, args.jobs, cost["wall_s_per_poll_at_4_jobs"])
    cpu_share = sim["polls_per_s"] * cost["cpu_s_per_poll"]
    requests_per_hour = sim["polls_per_s"] * 3600 * cost["intuit_requests_per_poll"]
    print(
        f"{args.realms} realms every {args.interval:.0f} s on one replica ({args.jobs} jobs): "
        f"{sim['polls_per_s']:.1f} polls/s, {cpu_share * 100:.0f}% of one core, "
        f"job slots {sim['slot_utilisation'] * 100:.0f}% busy, start delay p50 "
        f"{sim['start_delay_p50_s']:.1f} s / p99 {sim['start_delay_p99_s']:.1f} s / max "
        f"{sim['start_delay_max_s']:.1f} s, {requests_per_hour:,.0f} Intuit requests/hour"
    )
    path = write_result(
        "cdc_schedule",
        {
            "realms": args.realms,
            "interval_s": args.interval,
            "jobs": args.jobs,
            "measured": cost,
            "simulated": sim,
            "cpu_share_of_one_core": cpu_share,
            "intuit_requests_per_hour": requests_per_hour,
        },
    )
    print(f"written to {path}")


if __name__ == "__main__":
    asyncio.run(main())

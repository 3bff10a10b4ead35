"""Benchmark: the backfill of a 100,000-invoice company (30 % overdue) into placements.

    .venv/bin/python bench/backfill.py [--invoices 100000] [--customers 5000] [--runs 1]

The real processes run as ``aicollect run`` starts them, each its own OS process: the
Intuit emulator (its per-realm limits switched off), the matcher, the integration service
and the gateway, over an embedded PostgreSQL (or ``AICOLLECT_BENCH_DATABASE_URL``). The
tenant connects through the gateway's OAuth callback exactly as a creditor would; the
callback queues the backfill and the integration process's sync scheduler runs it. The
clock runs from the backfill's own start to its finish (``GetConnectionStatus``).

Printed and written to ``bench/results/backfill.json``: invoices per second into
placements, the peak resident memory (VmHWM) of the integration and matcher processes
(and, for information, the emulator's), the QBO HTTP calls made, and a check that the
matcher holds exactly one placement per overdue invoice.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

if __package__ in (None, ""):  # run as ``python bench/backfill.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aicollect.integration.v1 import integration_service_pb2 as pb
from aicollect.integration.v1 import integration_service_pb2_grpc as igrpc
from aicollect.localstack import LocalStack
from aicollect.matching.v1 import matching_service_pb2 as mpb
from aicollect.matching.v1 import matching_service_pb2_grpc as mgrpc
from aicollect.rpc.client import internal_channel
from bench._stack import (
    confirm_candidates,
    connect_tenant,
    create_company,
    running_stack,
    write_result,
)

REALM = "9130400000000001"
TENANT = "bench-backfill"
TARGET_PER_S = 10_000  # issue 14 (5,000 before it)
TARGET_MB = 300


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size so far (Linux VmHWM), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import psutil  # elsewhere: the current RSS instead

    return float(psutil.Process(pid).memory_info().rss) / 2**20


def cpu_seconds(pids: dict[str, int], postgres_dir: Path | None) -> dict[str, float]:
    """User+system CPU time so far of each process (PostgreSQL: postmaster and backends)."""
    import psutil

    out: dict[str, float] = {}
    for name, pid in pids.items():
        times = psutil.Process(pid).cpu_times()
        out[name] = times.user + times.system
    pid_file = postgres_dir / "pgdata" / "postmaster.pid" if postgres_dir else None
    if pid_file is not None and pid_file.exists():
        master = psutil.Process(int(pid_file.read_text().split()[0]))
        total = 0.0
        for proc in [master, *master.children(recursive=True)]:
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
        out["postgres"] = total
    return out


def pid_of(stack: LocalStack, name: str) -> int:
    proc = stack.children[name].proc
    assert proc is not None
    return proc.pid


async def emulator_json(
    http: aiohttp.ClientSession, stack: LocalStack, method: str, path: str, body: Any = None
) -> Any:
    assert stack.emulator_url is not None
    async with http.request(method, f"{stack.emulator_url}/_emulator{path}", json=body) as resp:
        return await resp.json()


async def wait_prerendered(http: aiohttp.ClientSession, stack: LocalStack) -> Any:
    """The company summary once every entity's JSON is rendered (QBO has no such cost)."""
    for _ in range(3000):
        summary = await emulator_json(http, stack, "GET", f"/companies/{REALM}")
        if summary["prerendered"]:
            return summary
        await asyncio.sleep(0.2)
    raise SystemExit("the emulator did not finish rendering the company")


async def count_placements(stack: LocalStack) -> tuple[int, int]:
    """(placements, distinct invoices) the matcher holds for the tenant."""
    invoices: set[str] = set()
    total = 0
    token = ""
    addr = stack.env["AICOLLECT_MATCHER_ADDR"]
    async with internal_channel(addr, stack.env["AICOLLECT_INTERNAL_TOKEN"]) as channel:
        matcher = mgrpc.MatchingServiceStub(channel)
        while True:
            page = await matcher.ListPlacements(
                mpb.ListPlacementsRequest(tenant_id=TENANT, page_size=1000, page_token=token)
            )
            total += len(page.placements)
            invoices.update(p.invoice_id for p in page.placements)
            token = page.next_page_token
            if not token:
                return total, len(invoices)


async def run(invoices: int, customers: int) -> dict[str, Any]:
    async with running_stack(extra_env={"AICOLLECT_SYNC_TICK_SECONDS": "1"}) as stack:
        async with aiohttp.ClientSession() as http:
            await emulator_json(
                http, stack, "PUT", "/faults", {"requests_per_minute": None, "max_concurrent": None}
            )
            started = time.perf_counter()
            await create_company(
                stack, realm_id=REALM, customers=customers, invoices=invoices, overdue=0.3
            )
            summary = await wait_prerendered(http, stack)
            print(
                f"company: {invoices:,} invoices, {customers:,} customers, "
                f"{summary['counts']['overdue_invoices']:,} overdue "
                f"(generated in {time.perf_counter() - started:.1f} s)"
            )
            calls_before = (await emulator_json(http, stack, "GET", "/stats"))["api_requests"]
            pids = {name: pid_of(stack, name) for name in ("integration", "matcher", "emulator")}
            pg_dir = stack.postgres.home if stack.postgres is not None else None
            cpu_before = cpu_seconds(pids, pg_dir)
            await connect_tenant(stack, TENANT, REALM)
            addr = stack.env["AICOLLECT_INTEGRATION_ADDR"]
            async with internal_channel(addr, stack.env["AICOLLECT_INTERNAL_TOKEN"]) as channel:
                integration = igrpc.IntegrationServiceStub(channel)
                while True:
                    status = await integration.GetConnectionStatus(
                        pb.GetConnectionStatusRequest(tenant_id=TENANT)
                    )
                    phase = status.backfill.phase
                    if phase in (pb.BACKFILL_PHASE_COMPLETED, pb.BACKFILL_PHASE_FAILED):
                        break
                    await asyncio.sleep(0.1)
            backfill = status.backfill
            if phase != pb.BACKFILL_PHASE_COMPLETED:
                raise SystemExit(f"the backfill failed: {backfill.last_error}")
            # The backfill staged the overdue invoices as candidates; the creditor confirms
            # (every candidate is read again from QBO, then placed).
            confirm_started = time.perf_counter()
            confirmed = await confirm_candidates(stack, TENANT)
            confirm_seconds = time.perf_counter() - confirm_started
            cpu_after = cpu_seconds(pids, pg_dir)
            peaks = {name: round(peak_rss_mb(pid), 1) for name, pid in pids.items()}
            calls_after = (await emulator_json(http, stack, "GET", "/stats"))["api_requests"]
        seconds = (
            backfill.finish_time.ToDatetime() - backfill.start_time.ToDatetime()
        ).total_seconds()
        placements, distinct = await count_placements(stack)
        calls = _realm_calls(calls_after) - _realm_calls(calls_before)
    overdue = int(summary["counts"]["overdue_invoices"])
    per_second = backfill.candidates_staged / seconds
    return {
        "invoices": invoices,
        "customers": customers,
        "overdue_invoices": overdue,
        "invoices_seen": backfill.invoices_seen,
        "candidates_staged": backfill.candidates_staged,
        "placements_created": int(confirmed["placed_count"]),
        "confirm_seconds": round(confirm_seconds, 3),
        "confirmed_per_second": round(int(confirmed["placed_count"]) / confirm_seconds, 1),
        "placements_in_matcher": placements,
        "exactly_one_per_overdue_invoice": placements == distinct == overdue,
        "seconds": round(seconds, 3),
        "invoices_per_second": round(per_second, 1),
        "target_invoices_per_second": TARGET_PER_S,
        "peak_rss_mb": peaks,
        "target_peak_rss_mb": TARGET_MB,
        "qbo_http_calls": calls,
        "cpu_seconds_during_backfill": {
            name: round(cpu_after[name] - cpu_before.get(name, 0.0), 2) for name in cpu_after
        },
        "setup": (
            "separate processes as `aicollect run` starts them: emulator (limits off), "
            "matcher, integration (its sync scheduler runs the backfill), gateway; "
            "embedded PostgreSQL 16 unless AICOLLECT_BENCH_DATABASE_URL"
        ),
    }


def _realm_calls(stats: Any) -> int:
    if isinstance(stats, dict):
        return int(stats.get(REALM, 0))
    return 0


def _show(result: dict[str, Any]) -> None:
    peaks = result["peak_rss_mb"]
    print(
        f"backfill: {result['placements_created']:,} placements from "
        f"{result['invoices_seen']:,} overdue invoices in {result['seconds']:.2f} s = "
        f"{result['invoices_per_second']:,.0f} invoices/s (target {TARGET_PER_S:,})"
    )
    print(
        f"peak RSS: integration {peaks['integration']} MB, matcher {peaks['matcher']} MB "
        f"(target < {TARGET_MB} MB each); emulator {peaks['emulator']} MB"
    )
    print(
        f"QBO HTTP calls: {result['qbo_http_calls']}; one placement per overdue invoice: "
        f"{result['exactly_one_per_overdue_invoice']}"
    )
    print(f"CPU seconds (backfill and confirmation): {result['cpu_seconds_during_backfill']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument(
        "--runs", type=int, default=1, help="repeat on a fresh stack; the median run is kept"
    )
    args = parser.parse_args()
    runs = []
    for n in range(args.runs):
        result = asyncio.run(run(args.invoices, args.customers))
        if args.runs > 1:
            print(f"-- run {n + 1} of {args.runs}")
        _show(result)
        runs.append(result)
    ordered = sorted(runs, key=lambda r: float(r["invoices_per_second"]))
    median = ordered[len(ordered) // 2]
    if args.runs > 1:
        median = {
            **median,
            "runs": args.runs,
            "invoices_per_second_all_runs": [r["invoices_per_second"] for r in runs],
            "peak_rss_mb_max_over_runs": {
                name: max(r["peak_rss_mb"][name] for r in runs) for name in median["peak_rss_mb"]
            },
        }
        print(f"-- median of {args.runs} runs")
        _show(median)
    path = write_result("backfill", median)
    print(f"written to {path}")
    return 0 if all(r["exactly_one_per_overdue_invoice"] for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())

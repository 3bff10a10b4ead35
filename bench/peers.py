"""Benchmark: our backfill side by side with two open-source QBO extractors on identical data.

    .venv/bin/python -m bench.peers [--invoices 100000] [--customers 5000]

Three runs over the same generated company (realm, generator seed 7, size and 30 %
overdue, as ``bench/backfill.py`` creates it), each on a fresh Intuit emulator with its
per-realm limits switched off:

1. **ours**: ``bench/backfill.py`` as a subprocess: the real processes, the tenant connects
   through the gateway's OAuth callback, the integration service's backfill reads the
   overdue invoices and their customers and the matcher writes placements in PostgreSQL;
2. **tap-quickbooks** (Singer, PyPI 2.5.0) extracting the Invoice stream to stdout;
3. **airbyte-source-quickbooks** (Airbyte, PyPI 4.0.4) extracting the invoices stream to
   stdout.

Each peer lives in its own virtual environment under ``bench/.venvs/`` that this script
creates and installs on first use (never the project's: they pin older cryptography,
urllib3, requests ...). Each gets a real OAuth grant from the emulator (headless consent
plus code exchange) and only its refresh token, so it refreshes at the emulator itself.
The wrapper ``bench/peers/peer_run.py`` points them at the emulator as
shared/reference/peers.md section 3 describes (module constants for the tap, a patched
manifest for Airbyte; ``OAUTHLIB_INSECURE_TRANSPORT=1``). The tap reads through Intuit's
``/batch`` endpoint, which the emulator does not serve, so its calls go through a small
translating proxy (``bench/batch_proxy.py``: one batch POST in, one emulator ``/query``
out).

Measured per tool: wall time, QBO HTTP calls (``/_emulator/stats`` before and after; the
tap's also at the proxy), token calls, peak resident memory of the tool's process
(``getrusage`` in the wrapper plus ``VmHWM`` polling), records emitted (checked: every
invoice exactly once) and records per second. Printed as a table with ratios and
written to ``bench/results/peers.json``. A peer that cannot be installed or run is
reported with its exact error and recorded as failed; the others still run.

This module runs ours, prints the report and is the entry point. The pieces:
``bench/peer_venvs.py`` (the peers and their venvs), ``bench/peer_emulator.py`` (the
emulator, the company and the OAuth grant), ``bench/batch_proxy.py`` (the tap's ``/batch``),
``bench/peer_measure.py`` (measuring a wrapped process, checking records) and
``bench/qbo_peer_runs.py`` (running the tap and the Airbyte connector).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from bench._stack import RESULTS, write_result
from bench.peer_emulator import OVERDUE_FRACTION, REALM, SEED
from bench.peer_venvs import ROOT, log, tail
from bench.qbo_peer_runs import PEERS, TAP_RATE_LIMIT, run_peer

OURS_MARKER = "PEERS-BENCH-RESULT "
OURS_CODE = (
    "import asyncio, json, sys\n"
    "from bench.backfill import run\n"
    "result = asyncio.run(run(int(sys.argv[1]), int(sys.argv[2])))\n"
    f"print({OURS_MARKER!r} + json.dumps(result), flush=True)\n"
)


async def run_ours(args: argparse.Namespace) -> dict[str, Any]:
    log("\n== ai-collect backfill (bench/backfill.py's run()) ==")
    path = RESULTS / "backfill.json"
    entry: dict[str, Any] = {"tool": "ai-collect backfill"}
    if args.reuse_ours:
        if not path.exists():
            return {**entry, "status": "failed", "error": f"--reuse-ours: no {path}"}
        result = json.loads(path.read_text())
        entry["reused_result_from"] = result.get("when")
    else:
        # bench/backfill.py's own entry point, in a child process of its own; the result
        # comes back on stdout (not through bench/results/backfill.json, which another
        # run of that benchmark could overwrite meanwhile).
        argv = [sys.executable, "-c", OURS_CODE, str(args.invoices), str(args.customers)]
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        assert proc.stdout is not None
        lines: list[str] = []
        result = {}
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            if line.startswith(OURS_MARKER):
                result = json.loads(line.removeprefix(OURS_MARKER))
                continue
            lines.append(line)
            log(f"  | {line}")
        await proc.wait()
        if proc.returncode != 0 or not result:
            output = tail("\n".join(lines))
            return {
                **entry,
                "status": "failed",
                "error": f"bench.backfill.run exited {proc.returncode}:\n{output}",
            }
        log(
            f"  {result['placements_created']:,} placements from {result['invoices_seen']:,} "
            f"overdue invoices in {result['seconds']:.2f} s, {result['qbo_http_calls']} API "
            f"calls, peak RSS {result['peak_rss_mb']}"
        )
    if int(result.get("invoices", -1)) != args.invoices:
        return {
            **entry,
            "status": "failed",
            "error": f"the result is for {result.get('invoices')} invoices, not {args.invoices}",
        }
    peaks = result["peak_rss_mb"]
    seconds = float(result["seconds"])
    cpu: dict[str, float] = result.get("cpu_seconds_during_backfill", {})
    entry.update(
        status="ok" if result.get("exactly_one_per_overdue_invoice") else "failed",
        seconds=seconds,
        qbo_api_calls=int(result["qbo_http_calls"]),
        peak_rss_mb=round(float(peaks["integration"]) + float(peaks["matcher"]), 1),
        peak_rss_mb_by_process=peaks,
        records=int(result["invoices_seen"]),
        placements_created=int(result["placements_created"]),
        overdue_invoices=int(result["overdue_invoices"]),
        records_per_second=float(result["invoices_per_second"]),
        cpu_seconds=round(sum(v for k, v in cpu.items() if k != "emulator"), 2),
        cpu_seconds_by_process=cpu,
        exactly_one_placement_per_overdue_invoice=result.get("exactly_one_per_overdue_invoice"),
        invoices=int(result["invoices"]),
        measured_at=result.get("when"),
    )
    return entry


CONTEXT = (
    "Not the same job: the peers only extract invoices as JSON lines to stdout (here a file, "
    "no destination); ours filters on the server (Balance > 0 AND DueDate < today), so it "
    "reads only the overdue invoices plus their customers, applies the placement rules, "
    "and writes placements (with debtor contacts) to PostgreSQL through "
    "the matcher. A peer pipeline would still need a destination and the rules after the "
    "time shown. 'records' is invoices read (ours) or invoices emitted (peers)."
)


def fmt(value: Any, spec: str = "") -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, int | float):
        return format(value, spec)
    return str(value)


def report(tools: dict[str, dict[str, Any]]) -> tuple[list[str], dict[str, Any]]:
    header = (
        f"{'tool':<34}{'time s':>9}{'HTTP calls':>12}{'token':>7}{'peak MB':>9}"
        f"{'records':>10}{'records/s':>11}{'CPU s':>8}"
    )
    lines = [header, "-" * len(header)]
    for entry in tools.values():
        if entry.get("status") != "ok":
            lines.append(f"{entry['tool']:<34}  FAILED: {entry.get('error', '').splitlines()[0]}")
            continue
        lines.append(
            f"{entry['tool']:<34}{fmt(entry['seconds'], '.2f'):>9}"
            f"{fmt(entry['qbo_api_calls'], ','):>12}{fmt(entry.get('token_calls', '-')):>7}"
            f"{fmt(entry['peak_rss_mb'], '.1f'):>9}{fmt(entry['records'], ','):>10}"
            f"{fmt(entry['records_per_second'], ',.0f'):>11}"
            f"{fmt(entry.get('cpu_seconds'), '.1f'):>8}"
        )
    ratios: dict[str, Any] = {}
    ours = tools.get("ours", {})
    if ours.get("status") == "ok":
        lines.append("")
        for key, entry in tools.items():
            if key == "ours" or entry.get("status") != "ok":
                continue
            ratio = {
                "peer_time_over_ours": round(entry["seconds"] / ours["seconds"], 2),
                "peer_time_after_startup_over_ours": (
                    round(entry["seconds_after_startup"] / ours["seconds"], 2)
                    if entry.get("seconds_after_startup")
                    else None
                ),
                "peer_http_calls_over_ours": round(
                    entry["qbo_api_calls"] / ours["qbo_api_calls"], 2
                ),
                "peer_peak_mb_over_ours": round(entry["peak_rss_mb"] / ours["peak_rss_mb"], 2),
                "ours_records_per_second_over_peer": round(
                    ours["records_per_second"] / entry["records_per_second"], 2
                ),
            }
            ratios[key] = ratio
            faster = "faster" if ratio["peer_time_over_ours"] > 1 else "SLOWER"
            lines.append(
                f"ours vs {entry['tool']}: ours is {faster}, the peer takes "
                f"{ratio['peer_time_over_ours']}x our time "
                f"({ratio['peer_time_after_startup_over_ours']}x without its "
                f"{fmt(entry.get('startup_seconds'), '.1f')} s interpreter start-up); "
                f"HTTP calls {ratio['peer_http_calls_over_ours']}x ours; "
                f"peak memory {ratio['peer_peak_mb_over_ours']}x ours ("
                + (
                    "ours uses more: two long-running processes"
                    if ratio["peer_peak_mb_over_ours"] < 1
                    else "ours uses less"
                )
                + f"); per record read, ours is {ratio['ours_records_per_second_over_peer']}x "
                "the peer's rate"
            )
            limiter = entry.get("rate_limiter")
            if limiter:
                capped = (
                    f"YES: it slept {limiter['limiter_slept_seconds']} s in "
                    f"{limiter['limiter_sleeps']} sleeps and capped throughput"
                    if limiter["limited_this_run"]
                    else "no (it never slept)"
                )
                lines.append(
                    f"  tap rate limiter ({TAP_RATE_LIMIT}/60 s): peak "
                    f"{limiter['peak_requests_in_any_60_s']} requests in any 60 s, "
                    f"{entry['http_requests_seen_by_proxy']} in all, at its own pace of "
                    f"{entry['http_requests_seen_by_proxy'] / entry['seconds'] * 60:.0f}/min; "
                    f"limited this run: {capped}"
                )
        lines.append("")
        lines.append(
            f"ours: {ours['placements_created']:,} placements from {ours['records']:,} overdue "
            f"invoices read (of {ours['invoices']:,} in the company); "
            f"peak MB is the integration ({ours['peak_rss_mb_by_process']['integration']}) "
            f"plus the matcher ({ours['peak_rss_mb_by_process']['matcher']}) processes, "
            "PostgreSQL not counted; its CPU s is integration + matcher + PostgreSQL, a "
            "peer's is its own process (the emulator is counted for nobody)"
        )
        lines.append("context: " + CONTEXT)
    return lines, ratios


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(chosen) - {"ours", *PEERS}
    if unknown:
        raise SystemExit(f"--only: unknown {sorted(unknown)}; choose from ours,{','.join(PEERS)}")
    tools: dict[str, dict[str, Any]] = {}
    for key in ("ours", *PEERS):
        if key not in chosen:
            continue
        load_before = [round(x, 2) for x in os.getloadavg()]
        tools[key] = await (run_ours(args) if key == "ours" else run_peer(PEERS[key], args))
        # Other work may share the two cores: the load average shows how much.
        tools[key]["load_average_1_5_15_before"] = load_before
        tools[key]["load_average_1_5_15_after"] = [round(x, 2) for x in os.getloadavg()]
    return tools


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument(
        "--only",
        default="ours," + ",".join(PEERS),
        help="comma-separated subset of: ours," + ",".join(PEERS),
    )
    parser.add_argument(
        "--reuse-ours",
        action="store_true",
        help="take our figures from an existing bench/results/backfill.json of the same size",
    )
    parser.add_argument(
        "--airbyte-max-results",
        type=int,
        default=1000,
        help="Airbyte's max_results (page size); 0 = the connector's default of 200",
    )
    parser.add_argument("--time-limit", type=float, default=1800, help="per peer run, seconds")
    args = parser.parse_args()
    if args.airbyte_max_results == 0:
        args.airbyte_max_results = None
    log(
        f"company: {args.invoices:,} invoices, {args.customers:,} customers, "
        f"{OVERDUE_FRACTION:.0%} overdue, seed {SEED}, realm {REALM}; emulator limits off"
    )
    tools = asyncio.run(amain(args))
    lines, ratios = report(tools)
    log("")
    for line in lines:
        log(line)
    result = {
        "invoices": args.invoices,
        "customers": args.customers,
        "overdue_fraction": OVERDUE_FRACTION,
        "seed": SEED,
        "realm_id": REALM,
        "tools": tools,
        "ratios": ratios,
        "context": CONTEXT,
        "machine_note": "2 cores shared with other work; other processes may be running",
    }
    path = write_result("peers", result)
    log(f"\nwritten to {path}")
    return 0 if all(t.get("status") == "ok" for t in tools.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: two open-source Xero extractors backfilling one organisation, Xero's limits on.

    .venv/bin/python -m bench.xero_peers [--invoices 100000] [--contacts 5000] [--parallel]

The Xero side of ``bench/peers.py`` (which it reuses: the peers' own venvs, the wrapper
``bench/peers/peer_run.py`` that points a peer at our emulator in memory, the process
measurement and the record checks). Each peer gets a fresh Xero emulator process with
**Xero's real per-organisation limits on** (60 calls a minute, 5 in flight, 5,000 a day; the
app-wide 10,000 a minute) and the same generated organisation (seed 7, 30 % overdue):

1. Singer ``tap-xero`` extracting the ``invoices`` stream;
2. ``airbyte-source-xero`` extracting the ``invoices`` stream.

Measured per tool: wall time, Accounting API calls and token calls (the emulator's own
counters), the 429s it received by limit (minute, day, concurrent, appminute), whether the
run stayed inside the minute limit and the daily budget, peak RSS and CPU of the tool's
process, and records (every invoice exactly once). Printed as a table and written to
``bench/results/xero_peers.json`` with the load average before and after each run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import tempfile
from contextlib import AbstractAsyncContextManager
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from bench._stack import write_result
from bench.peer_emulator import Emulator, emulator_process
from bench.peer_measure import ProcessRun, check_records, read_messages, run_wrapped
from bench.peer_venvs import ROOT, VENVS, Peer, PeerFailed, PeerFailedWith, ensure_venv, log
from bench.peers import fmt
from emulators.xero.cli import CLIENT_SECRET_ENV

SEED = 7
OVERDUE_FRACTION = 0.3
TENANT = "7b0c0a55-0000-4000-8000-000000000007"
ORG_NAME = "Bench Co (NZ)"
CLIENT_ID = "xero-peers-bench"
CLIENT_SECRET = "xero-peers-bench-secret"  # noqa: S105  (a local emulator app, not a secret)
REDIRECT_URI = "http://127.0.0.1:9/xero-peers-bench/callback"
SCOPE = "offline_access accounting.transactions.read accounting.contacts.read"
MINUTE_LIMIT, DAILY_LIMIT = 60, 5000  # the emulator's defaults: Xero's per-organisation limits


def python310() -> str:
    """A CPython 3.10: pyenv's own build if there is one (its shim may refuse), else PATH's."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    built = sorted(root.glob("versions/3.10.*/bin/python3.10"))
    return str(built[-1]) if built else shutil.which("python3.10") or "python3.10"


TAP_XERO = Peer(
    key="tap-xero",
    title="Singer tap-xero 2.6.0",
    # tap_xero/client.py imports six, which the package does not declare: without it the
    # tap cannot even import (ModuleNotFoundError: No module named 'six').
    requirement="tap-xero==2.6.0 six==1.17.0",
    wrapper="tap-xero",
    report_versions=("tap-xero", "singer-python", "requests", "backoff"),
)
AIRBYTE_XERO = Peer(
    key="airbyte-source-xero",
    title="Airbyte source-xero 2.0.1",
    requirement="airbyte-source-xero==2.0.1",
    wrapper="airbyte-xero",
    report_versions=("airbyte-source-xero", "airbyte-cdk", "requests"),
    python_range=((3, 9), (3, 12)),
)
# The same pin on Python 3.10: on 3.11 its components.py cannot be imported (a dataclass
# field defaults to a JsonDecoder instance, which Python 3.11 rejects as a mutable default).
AIRBYTE_XERO_310 = Peer(
    key="airbyte-source-xero-py3.10",
    title="Airbyte source-xero 2.0.1 (Py3.10)",
    requirement="airbyte-source-xero==2.0.1",
    wrapper="airbyte-xero",
    report_versions=("airbyte-source-xero", "airbyte-cdk", "requests"),
    interpreter=python310(),
)
PEERS = {p.key: p for p in (TAP_XERO, AIRBYTE_XERO, AIRBYTE_XERO_310)}


def xero_emulator() -> AbstractAsyncContextManager[Emulator]:
    """A fresh Xero emulator process with its default (Xero's) limits, on a port it bound."""
    app = (CLIENT_ID, CLIENT_SECRET, REDIRECT_URI)
    return emulator_process("xero-emulator", "emulators.xero", app, CLIENT_SECRET_ENV, SEED)


async def create_organisation(emu: Emulator, invoices: int, contacts: int) -> dict[str, Any]:
    summary: dict[str, Any] = await emu.control(
        "POST",
        "/organisations",
        {
            "tenant_id": TENANT,
            "name": ORG_NAME,
            "contacts": contacts,
            "invoices": invoices,
            "overdue_fraction": OVERDUE_FRACTION,
            "seed": SEED,
        },
    )
    return summary


async def grant(emu: Emulator) -> dict[str, Any]:
    """A real grant: headless consent for the organisation, then the code exchange."""
    query = urlencode(
        {
            "client_id": CLIENT_ID,
            "response_type": "code",
            "scope": SCOPE,
            "redirect_uri": REDIRECT_URI,
            "state": base64.urlsafe_b64encode(os.urandom(12)).decode(),
            "emulator_decision": "allow",
            "emulator_tenants": TENANT,
        }
    )
    url = f"{emu.url}/identity/connect/authorize?{query}"
    async with emu.http.get(url, allow_redirects=False) as resp:
        location = resp.headers.get("Location", "")
    params = parse_qs(urlsplit(location).query)
    if "code" not in params:
        raise PeerFailed(f"consent did not return a code: {location!r}")
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    async with emu.http.post(
        f"{emu.url}/connect/token",
        data={
            "grant_type": "authorization_code",
            "code": params["code"][0],
            "redirect_uri": REDIRECT_URI,
        },
        headers={"Authorization": "Basic " + basic},
    ) as resp:
        token: dict[str, Any] = await resp.json()
        if resp.status != 200 or "refresh_token" not in token:
            raise PeerFailed(f"code exchange failed: {resp.status} {token}")
    return token


def call_counts(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    def api(stats: dict[str, Any]) -> int:
        return int(stats.get("api_requests", {}).get(TENANT, 0))

    def tokens(stats: dict[str, Any]) -> int:
        return sum(int(n) for n in stats.get("token_calls", {}).values())

    throttled = {
        problem: int(after.get("throttled", {}).get(problem, 0))
        - int(before.get("throttled", {}).get(problem, 0))
        for problem in set(after.get("throttled", {})) | set(before.get("throttled", {}))
    }
    calls = api(after) - api(before)
    refused = sum(throttled.values())
    return {
        "api_calls": calls,
        "token_calls": tokens(after) - tokens(before),
        "http_429": refused,
        "http_429_by_limit": {k: v for k, v in throttled.items() if v},
        "stayed_inside_minute_limit": throttled.get("minute", 0) == 0
        and throttled.get("concurrent", 0) == 0,
        "daily_budget_held": calls + refused <= DAILY_LIMIT and throttled.get("day", 0) == 0,
        "share_of_daily_budget": round(calls / DAILY_LIMIT, 3),
    }


def measured(run: ProcessRun, counts: dict[str, Any], ids: list[str], invoices: int) -> Any:
    return {
        "seconds": round(run.seconds, 3),
        **counts,
        "peak_rss_mb": run.peak_rss_mb,
        "cpu_seconds": round(
            float(run.stats.get("cpu_user_s", 0.0)) + float(run.stats.get("cpu_system_s", 0.0)), 2
        ),
        "records_per_second": round(len(ids) / run.seconds, 1) if run.seconds else None,
        "returncode": run.returncode,
        **check_records(ids, invoices),
    }


async def run_tap_xero(
    emu: Emulator, python: Path, work: Path, invoices: int, start: str, limit: float
) -> dict[str, Any]:
    token = await grant(emu)
    api, token_url = f"{emu.url}/api.xro/2.0", f"{emu.url}/connect/token"
    config_path = work / "tap-config.json"
    config = {
        "start_date": start,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "tenant_id": TENANT,
        "refresh_token": token["refresh_token"],
        "user_agent": "ai-collect xero peers benchmark",
    }
    config_path.write_text(json.dumps(config, indent=2))
    common = {"base_url": api, "token_url": token_url, "workdir": work}
    disc = await run_wrapped(
        python,
        TAP_XERO,
        peer_args=["--config", str(config_path), "--discover"],
        label="tap-discover",
        time_limit=300,
        **common,  # type: ignore[arg-type]
    )
    if disc.returncode != 0:
        raise PeerFailed(f"tap-xero discovery exited {disc.returncode}:\n{disc.stderr_tail}")
    catalog = json.loads((work / "tap-discover.out").read_text())
    for stream in catalog["streams"]:
        for entry in stream.get("metadata", []):
            if entry.get("breadcrumb") == []:
                entry["metadata"]["selected"] = stream["tap_stream_id"] == "invoices"
    catalog_path = work / "tap-catalog.json"
    catalog_path.write_text(json.dumps(catalog))
    before = await emu.stats()
    run = await run_wrapped(
        python,
        TAP_XERO,
        peer_args=["--config", str(config_path), "--catalog", str(catalog_path)],
        label="tap-sync",
        time_limit=limit,
        **common,  # type: ignore[arg-type]
    )
    counts = call_counts(before, await emu.stats())
    ids = [
        str(m["record"].get("InvoiceID"))
        for m in read_messages(work / "tap-sync.out")
        if m.get("type") == "RECORD" and m.get("stream") == "invoices"
    ]
    rotated = json.loads(config_path.read_text())["refresh_token"] != token["refresh_token"]
    result = {
        **measured(run, counts, ids, invoices),
        "page_size": "100 (the tap's FULL_PAGE_SIZE; it sends no pageSize)",
        "refresh_token_rotated_and_persisted_by_tap": rotated,
        "start_date": start,
        "how_pointed": (
            "wrapper sets tap_xero.client.BASE_URL to the emulator's /api.xro/2.0 and mounts "
            "a requests adapter on each XeroClient session for https://identity.xero.com/"
            "connect/token that sends the request to the emulator's /connect/token; "
            "discovery's GET /Currencies access check skipped (not served by the emulator)"
        ),
    }
    if run.returncode != 0:
        raise PeerFailedWith(f"tap-xero exited {run.returncode}:\n{run.stderr_tail}", result)
    return result


async def run_airbyte_xero(
    emu: Emulator, python: Path, work: Path, invoices: int, start: str, limit: float
) -> dict[str, Any]:
    token = await grant(emu)
    api, token_url = f"{emu.url}/api.xro/2.0/", f"{emu.url}/connect/token"
    config_path = work / "airbyte-config.json"
    config = {
        # The connector's "OAuth access token" mode; its other mode is a Custom
        # Connection (client_credentials), which the emulator does not offer.
        "credentials": {"auth_type": "oauth2_access_token", "access_token": token["access_token"]},
        "tenant_id": TENANT,
        "start_date": start,
    }
    config_path.write_text(json.dumps(config, indent=2))
    common = {"base_url": api, "token_url": token_url, "workdir": work}
    disc = await run_wrapped(
        python,
        AIRBYTE_XERO,
        peer_args=["discover", "--config", str(config_path)],
        label="airbyte-discover",
        time_limit=300,
        **common,  # type: ignore[arg-type]
    )
    streams = [
        s
        for m in read_messages(work / "airbyte-discover.out")
        if m.get("type") == "CATALOG"
        for s in m["catalog"]["streams"]
        if s["name"] == "invoices"
    ]
    if disc.returncode != 0 or not streams:
        traces = [  # the CDK reports its own failure on stdout, not stderr
            str(m["trace"]["error"].get("internal_message") or m["trace"]["error"]["message"])
            for m in read_messages(work / "airbyte-discover.out")
            if m.get("type") == "TRACE" and m["trace"].get("type") == "ERROR"
        ]
        raise PeerFailed(
            f"airbyte discover failed ({disc.returncode}): {traces[:1]}\n{disc.stderr_tail}"
        )
    configured = {
        "stream": streams[0],
        "sync_mode": "incremental",
        "cursor_field": streams[0].get("default_cursor_field") or ["UpdatedDateUTC"],
        "destination_sync_mode": "append",
    }
    catalog_path = work / "airbyte-catalog.json"
    catalog_path.write_text(json.dumps({"streams": [configured]}))
    before = await emu.stats()
    run = await run_wrapped(
        python,
        AIRBYTE_XERO,
        peer_args=["read", "--config", str(config_path), "--catalog", str(catalog_path)],
        label="airbyte-read",
        time_limit=limit,
        **common,  # type: ignore[arg-type]
    )
    counts = call_counts(before, await emu.stats())
    ids: list[str] = []
    errors: list[str] = []
    for m in read_messages(work / "airbyte-read.out"):
        if m.get("type") == "RECORD" and m["record"].get("stream") == "invoices":
            ids.append(str(m["record"]["data"].get("InvoiceID")))
        elif m.get("type") == "TRACE" and m["trace"].get("type") == "ERROR":
            errors.append(str(m["trace"]["error"].get("message")))
    result = {
        **measured(run, counts, ids, invoices),
        "page_size": "100 (PageIncrement, sent as `page_size`, not Xero's `pageSize`)",
        "trace_errors": errors[:5],
        "start_date": start,
        "how_pointed": (
            "wrapper loads source_xero/manifest.yaml, sets definitions.requester.url_base and "
            "definitions.oauth_authenticator.token_refresh_endpoint to the emulator, runs "
            "airbyte_cdk.entrypoint.launch(ManifestDeclarativeSource(...)); access-token mode"
        ),
    }
    if run.returncode != 0 or errors:
        raise PeerFailedWith(
            f"airbyte exited {run.returncode}: {errors[:1]}\n{run.stderr_tail}", result
        )
    return result


async def run_peer(peer: Peer, args: argparse.Namespace) -> dict[str, Any]:
    """Installs (first use) and runs one peer on a fresh emulator; never raises."""
    entry: dict[str, Any] = {"tool": peer.title, "requirement": peer.requirement}
    entry["load_average_1_5_15_before"] = [round(x, 2) for x in os.getloadavg()]
    try:
        python, versions, installed_in = await ensure_venv(peer)
        entry.update(venv=str((VENVS / peer.key).relative_to(ROOT)), versions=versions)
        if installed_in is not None:
            entry["install_seconds"] = installed_in
        async with xero_emulator() as emu:
            summary = await create_organisation(emu, args.invoices, args.contacts)
            entry["organisation"] = {"today": summary["today"], **summary["counts"]}
            # Before every generated record's UpdatedDateUTC (400 days before today).
            start = (date.fromisoformat(summary["today"]) - timedelta(days=800)).isoformat()
            start += "T00:00:00Z"
            with tempfile.TemporaryDirectory(prefix=f"xero-peers-{peer.key}-") as tmp:
                run = run_tap_xero if peer is TAP_XERO else run_airbyte_xero
                try:
                    entry.update(
                        await run(emu, python, Path(tmp), args.invoices, start, args.time_limit)
                    )
                except PeerFailed:
                    # What the emulator counted up to the failure (a killed run has no
                    # figures of its own).
                    entry["emulator_stats_at_failure"] = await emu.stats()
                    raise
        if not entry["all_invoices_exactly_once"]:
            raise PeerFailed(
                f"{peer.key} emitted {entry['records']:,} records "
                f"({entry['distinct_invoice_ids']:,} distinct) for {args.invoices:,} invoices"
            )
        entry["status"] = "ok"
    except PeerFailed as exc:
        if isinstance(exc, PeerFailedWith):
            entry.update(exc.partial)
        entry.update(status="failed", error=str(exc))
    except Exception as exc:  # a harness error for one peer must not stop the others
        entry.update(status="failed", error=f"harness: {type(exc).__name__}: {exc}")
    entry["load_average_1_5_15_after"] = [round(x, 2) for x in os.getloadavg()]
    log(f"{peer.key}: {entry['status']} {entry.get('error', '')[:300]}")
    return entry


def table(tools: dict[str, dict[str, Any]]) -> list[str]:
    header = (
        f"{'tool':<30}{'time s':>9}{'API calls':>11}{'token':>7}{'429s':>6}{'in 60/min':>11}"
        f"{'in 5,000/day':>14}{'records':>10}{'peak MB':>9}{'CPU s':>7}"
    )
    lines = [header, "-" * len(header)]
    for entry in tools.values():
        yes = {True: "yes", False: "NO", None: "-"}
        lines.append(
            f"{entry['tool']:<30}{fmt(entry.get('seconds'), '.1f'):>9}"
            f"{fmt(entry.get('api_calls'), ','):>11}{fmt(entry.get('token_calls')):>7}"
            f"{fmt(entry.get('http_429')):>6}"
            f"{yes[entry.get('stayed_inside_minute_limit')]:>11}"
            f"{yes[entry.get('daily_budget_held')]:>14}{fmt(entry.get('records'), ','):>10}"
            f"{fmt(entry.get('peak_rss_mb'), '.1f'):>9}{fmt(entry.get('cpu_seconds'), '.1f'):>7}"
        )
        if entry.get("status") != "ok":
            lines.append(f"  FAILED: {str(entry.get('error', '')).splitlines()[0][:200]}")
        if entry.get("http_429_by_limit"):
            lines.append(f"  429s by limit: {entry['http_429_by_limit']}")
    return lines


async def amain(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    chosen = [PEERS[k] for k in PEERS if k in args.only.split(",")]
    if args.parallel:
        results = await asyncio.gather(*(run_peer(p, args) for p in chosen))
        return {p.key: r for p, r in zip(chosen, results, strict=True)}
    return {p.key: await run_peer(p, args) for p in chosen}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--contacts", type=int, default=5_000)
    parser.add_argument("--only", default=",".join(PEERS), help="comma-separated peers")
    parser.add_argument("--parallel", action="store_true", help="run the peers at once")
    parser.add_argument("--time-limit", type=float, default=2400, help="per peer run, seconds")
    args = parser.parse_args()
    unknown = set(args.only.split(",")) - set(PEERS)
    if unknown:
        raise SystemExit(f"--only: unknown {sorted(unknown)}; choose from {','.join(PEERS)}")
    log(
        f"organisation: {args.invoices:,} invoices, {args.contacts:,} contacts, "
        f"{OVERDUE_FRACTION:.0%} overdue, seed {SEED}; emulator limits ON "
        f"({MINUTE_LIMIT}/min, 5 in flight, {DAILY_LIMIT:,}/day per organisation)"
    )
    tools = asyncio.run(amain(args))
    for line in table(tools):
        log(line)
    result = {
        "invoices": args.invoices,
        "contacts": args.contacts,
        "overdue_fraction": OVERDUE_FRACTION,
        "seed": SEED,
        "tenant_id": TENANT,
        "limits": {"minute": MINUTE_LIMIT, "concurrent": 5, "daily": DAILY_LIMIT},
        "parallel": args.parallel,
        "tools": tools,
        "machine_note": "2 cores shared with other work; other processes may be running",
    }
    path = write_result("xero_peers", result)
    log(f"written to {path}")
    return 0 if all(t.get("status") == "ok" for t in tools.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())

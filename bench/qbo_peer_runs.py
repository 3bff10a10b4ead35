"""Running the QBO peers: Singer tap-quickbooks and Airbyte source-quickbooks.

``run_peer`` installs a peer on first use, starts a fresh emulator with the company and
runs the peer's discovery (untimed) and then its timed sync of the invoices stream:
``run_tap`` through the ``/batch`` proxy, ``run_airbyte`` straight at the emulator.
A peer that fails is recorded with its exact error; ``run_peer`` never raises.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.batch_proxy import BatchProxy
from bench.peer_emulator import (
    CLIENT_ID,
    CLIENT_SECRET,
    REALM,
    Emulator,
    create_company,
    oauth_grant,
    realm_calls,
    running_emulator,
    start_date_covering_all,
)
from bench.peer_measure import check_records, figures, proc_cpu_seconds, read_messages, run_wrapped
from bench.peer_venvs import ROOT, VENVS, Peer, PeerFailed, PeerFailedWith, ensure_venv, log

TAP_RATE_LIMIT = 495  # singer.utils.ratelimit(495, 60) on the tap's every API call


TAP = Peer(
    key="tap-quickbooks",
    title="Singer tap-quickbooks 2.5.0",
    requirement="tap-quickbooks==2.5.0",
    wrapper="tap",
    report_versions=("tap-quickbooks", "singer-python", "requests", "requests-oauthlib"),
)
AIRBYTE = Peer(
    key="airbyte-source-quickbooks",
    title="Airbyte source-quickbooks 4.0.4",
    requirement="airbyte-source-quickbooks==4.0.4",
    wrapper="airbyte",
    report_versions=("airbyte-source-quickbooks", "airbyte-cdk", "requests", "cryptography"),
    python_range=((3, 10), (3, 12)),
)
PEERS = {p.key: p for p in (TAP, AIRBYTE)}


async def run_tap(
    emu: Emulator, python: Path, workdir: Path, invoices: int, start_date: str, time_limit: float
) -> dict[str, Any]:
    grant = await oauth_grant(emu)
    proxy = BatchProxy(upstream=emu.url)
    base = await proxy.start()
    token_url = f"{emu.url}/oauth2/v1/tokens/bearer"
    try:
        config_path = workdir / "tap-config.json"
        config_path.write_text(
            json.dumps(
                {
                    "start_date": start_date,
                    "user_agent": "ai-collect peers benchmark",
                    "realm_id": REALM,
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "refresh_token": grant["refresh_token"],
                },
                indent=2,
            )
        )
        # Discovery (not timed): refreshes once and reads companyinfo, writes the catalog.
        disc = await run_wrapped(
            python,
            TAP,
            base_url=base,
            token_url=token_url,
            peer_args=["--config", str(config_path), "--discover"],
            workdir=workdir,
            label="tap-discover",
            time_limit=300,
        )
        if disc.returncode != 0:
            raise PeerFailed(f"tap discovery exited {disc.returncode}:\n{disc.stderr_tail}")
        catalog = json.loads((workdir / "tap-discover.out").read_text())
        selected = 0
        for stream in catalog["streams"]:
            chosen = stream["tap_stream_id"] == "invoices"
            selected += chosen
            for entry in stream.get("metadata", []):
                if entry.get("breadcrumb") == []:
                    entry["metadata"]["selected"] = chosen
        if selected != 1:
            raise PeerFailed("the tap's catalog has no `invoices` stream")
        catalog_path = workdir / "tap-catalog.json"
        catalog_path.write_text(json.dumps(catalog))
        rotated = json.loads(config_path.read_text())["refresh_token"] != grant["refresh_token"]

        before = await emu.stats()
        emulator_cpu = proc_cpu_seconds(emu.proc.pid)
        since = time.monotonic()
        run = await run_wrapped(
            python,
            TAP,
            base_url=base,
            token_url=token_url,
            peer_args=["--config", str(config_path), "--catalog", str(catalog_path)],
            workdir=workdir,
            label="tap-sync",
            time_limit=time_limit,
        )
        after = await emu.stats()
        emulator_cpu = proc_cpu_seconds(emu.proc.pid) - emulator_cpu
    finally:
        await proxy.stop()
    calls = realm_calls(before, after)
    ids: list[str] = []
    states = 0
    for message in read_messages(workdir / "tap-sync.out"):
        if message.get("type") == "RECORD" and message.get("stream") == "invoices":
            ids.append(str(message["record"].get("Id")))
        elif message.get("type") == "STATE":
            states += 1
    tool_requests = [r for r in proxy.requests if r[0] >= since]
    batch_posts = sum(1 for _, method, path, _ in tool_requests if path.endswith("/batch"))
    non_200 = [(m, p, s) for _, m, p, s in tool_requests if s != 200]
    peak_window = proxy.window_peak(since)
    sleeps = int(run.stats.get("ratelimit_sleeps", 0))
    result = {
        **figures(run, calls, len(ids)),
        **check_records(ids, invoices),
        "state_messages": states,
        "emulator_cpu_seconds": round(emulator_cpu, 2),
        "http_requests_seen_by_proxy": len(tool_requests),
        "batch_posts": batch_posts,
        "non_200_responses": non_200[:20],
        "rate_limiter": {
            "limit": f"{TAP_RATE_LIMIT} requests per 60 s (singer.utils.ratelimit)",
            "peak_requests_in_any_60_s": peak_window,
            "limiter_sleeps": sleeps,
            "limiter_slept_seconds": run.stats.get("ratelimit_slept_s", 0.0),
            "limited_this_run": sleeps > 0,
        },
        "refresh_token_rotated_and_persisted_by_tap": rotated,
        "page_size": 1000,
        "start_date": start_date,
        "how_pointed": (
            "wrapper sets tap_quickbooks.client.PROD_ENDPOINT_BASE / SANDBOX_ENDPOINT_BASE "
            "(to the /batch proxy) and TOKEN_REFRESH_URL (to the emulator) before main(); "
            "OAUTHLIB_INSECURE_TRANSPORT=1"
        ),
    }
    if run.returncode != 0:
        raise PeerFailedWith(f"the tap exited {run.returncode}:\n{run.stderr_tail}", result)
    return result


async def run_airbyte(
    emu: Emulator,
    python: Path,
    workdir: Path,
    invoices: int,
    start_date: str,
    time_limit: float,
    max_results: int | None,
) -> dict[str, Any]:
    grant = await oauth_grant(emu)
    base = emu.url
    token_url = f"{emu.url}/oauth2/v1/tokens/bearer"
    config: dict[str, Any] = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": grant["refresh_token"],
        # Only the refresh token is handed over: an expired placeholder access token makes
        # the CDK refresh at the emulator before its first call.
        "access_token": "expired-placeholder",
        "token_expiry_date": "2000-01-01T00:00:00+00:00",
        "realm_id": REALM,
        "start_date": start_date,
        "sandbox": False,
    }
    if max_results is not None:
        config["max_results"] = max_results
    config_path = workdir / "airbyte-config.json"
    config_path.write_text(json.dumps(config, indent=2))
    disc = await run_wrapped(
        python,
        AIRBYTE,
        base_url=base,
        token_url=token_url,
        peer_args=["discover", "--config", str(config_path)],
        workdir=workdir,
        label="airbyte-discover",
        time_limit=300,
    )
    if disc.returncode != 0:
        raise PeerFailed(f"airbyte discover exited {disc.returncode}:\n{disc.stderr_tail}")
    stream: dict[str, Any] | None = None
    for message in read_messages(workdir / "airbyte-discover.out"):
        if message.get("type") == "CATALOG":
            for candidate in message["catalog"]["streams"]:
                if candidate["name"] == "invoices":
                    stream = candidate
    if stream is None:
        raise PeerFailed("airbyte discover listed no `invoices` stream")
    catalog_path = workdir / "airbyte-catalog.json"
    catalog_path.write_text(
        json.dumps(
            {
                "streams": [
                    {
                        "stream": stream,
                        "sync_mode": "incremental",
                        "cursor_field": stream.get("default_cursor_field") or ["airbyte_cursor"],
                        "destination_sync_mode": "append",
                    }
                ]
            }
        )
    )
    before = await emu.stats()
    emulator_cpu = proc_cpu_seconds(emu.proc.pid)
    run = await run_wrapped(
        python,
        AIRBYTE,
        base_url=base,
        token_url=token_url,
        peer_args=["read", "--config", str(config_path), "--catalog", str(catalog_path)],
        workdir=workdir,
        label="airbyte-read",
        time_limit=time_limit,
    )
    after = await emu.stats()
    emulator_cpu = proc_cpu_seconds(emu.proc.pid) - emulator_cpu
    calls = realm_calls(before, after)
    ids: list[str] = []
    states = control_configs = 0
    errors: list[str] = []
    for message in read_messages(workdir / "airbyte-read.out"):
        kind = message.get("type")
        if kind == "RECORD" and message["record"].get("stream") == "invoices":
            ids.append(str(message["record"]["data"].get("Id")))
        elif kind == "STATE":
            states += 1
        elif kind == "CONTROL" and message["control"].get("type") == "CONNECTOR_CONFIG":
            control_configs += 1
        elif kind == "TRACE" and message["trace"].get("type") == "ERROR":
            errors.append(str(message["trace"]["error"].get("message")))
    result = {
        **figures(run, calls, len(ids)),
        **check_records(ids, invoices),
        "state_messages": states,
        "emulator_cpu_seconds": round(emulator_cpu, 2),
        "rotated_token_control_messages": control_configs,
        "trace_errors": errors[:5],
        "page_size": max_results if max_results is not None else "connector default (200)",
        "slice": "P30D (DatetimeBasedCursor in the manifest)",
        "start_date": start_date,
        "how_pointed": (
            "wrapper loads source_quickbooks/manifest.yaml, sets definitions.base_requester."
            "url_base and authenticator.token_refresh_endpoint to the emulator, runs "
            "airbyte_cdk.entrypoint.launch(ManifestDeclarativeSource(...)); "
            "OAUTHLIB_INSECURE_TRANSPORT=1 set as well (the CDK does not need it)"
        ),
    }
    if run.returncode != 0 or errors:
        raise PeerFailedWith(
            f"the connector exited {run.returncode}: {errors[:1]}\n{run.stderr_tail}", result
        )
    return result


async def run_peer(peer: Peer, args: argparse.Namespace) -> dict[str, Any]:
    """Installs (first use) and runs one peer on a fresh emulator; never raises."""
    log(f"\n== {peer.title} ==")
    entry: dict[str, Any] = {"tool": peer.title, "requirement": peer.requirement}
    try:
        python, versions, installed_in = await ensure_venv(peer)
        entry["venv"] = str((VENVS / peer.key).relative_to(ROOT))
        entry["versions"] = versions
        if installed_in is not None:
            entry["install_seconds"] = installed_in
        log(f"  versions: {versions}")
        async with running_emulator() as emu:
            summary = await create_company(emu, args.invoices, args.customers)
            entry["company"] = {"today": summary.get("today"), **summary["counts"]}
            grant = await oauth_grant(emu)  # the harness's own: only to find the start date
            start_date = await start_date_covering_all(emu, grant["access_token"])
            with tempfile.TemporaryDirectory(prefix=f"peers-{peer.key}-") as tmp:
                workdir = Path(tmp)
                if peer is TAP:
                    figures_ = await run_tap(
                        emu, python, workdir, args.invoices, start_date, args.time_limit
                    )
                else:
                    figures_ = await run_airbyte(
                        emu,
                        python,
                        workdir,
                        args.invoices,
                        start_date,
                        args.time_limit,
                        args.airbyte_max_results,
                    )
        entry.update(figures_)
        if not entry["all_invoices_exactly_once"]:
            raise PeerFailedWith(
                f"{peer.key} emitted {entry['records']:,} records "
                f"({entry['distinct_invoice_ids']:,} distinct) for {args.invoices:,} invoices",
                {},
            )
        entry["status"] = "ok"
        log(
            f"  {entry['records']:,} invoices in {entry['seconds']:.2f} s "
            f"({entry['records_per_second']:,.0f}/s), {entry['qbo_api_calls']} API calls "
            f"+ {entry['token_calls']} token calls, peak {entry['peak_rss_mb']} MB"
        )
    except PeerFailed as exc:
        if isinstance(exc, PeerFailedWith):
            entry.update(exc.partial)
        entry["status"] = "failed"
        entry["error"] = str(exc)
        log(f"  FAILED: {exc}")
    except Exception as exc:  # a harness error for one peer must not stop the others
        entry["status"] = "failed"
        entry["error"] = f"{type(exc).__name__}: {exc}"
        log(f"  FAILED (harness): {entry['error']}")
    return entry

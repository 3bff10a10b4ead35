"""The QBO emulator the peers run against: a fresh process, the company, a real grant.

``running_emulator`` starts a fresh Intuit emulator (limits switched off by
``create_company``) with the benchmark's OAuth app registered; ``create_company``
generates the company of ``bench/backfill.py`` (same realm, seed, share overdue) and
waits until it is prerendered; ``oauth_grant`` performs a headless consent and the code
exchange; ``start_date_covering_all`` finds a start date before the oldest invoice;
``realm_calls`` reads the API and token calls between two ``/_emulator/stats``.
``Emulator`` (the control API over HTTP) is shared with the Xero benchmarks.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp

from aicollect.handshake import EMULATOR_CLIENT_SECRET_ENV as CLIENT_SECRET_ENV
from aicollect.localstack import Child, StartFailed
from bench.peer_venvs import PeerFailed

# The company of bench/backfill.py (bench/_stack.py create_company): same realm, seed, name.
REALM = "9130400000000001"
SEED = 7
OVERDUE_FRACTION = 0.3
COMPANY_NAME = "Bench Co"

CLIENT_ID = "peers-bench"
CLIENT_SECRET = "peers-bench-secret"  # noqa: S105  (a local emulator app, not a secret)
REDIRECT_URI = "http://127.0.0.1:9/peers-bench/callback"
SCOPE = "com.intuit.quickbooks.accounting"


@dataclass
class Emulator:
    url: str
    proc: asyncio.subprocess.Process
    http: aiohttp.ClientSession

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(
            method,
            f"{self.url}/_emulator{path}",
            json=body,
            timeout=aiohttp.ClientTimeout(total=600),
        ) as resp:
            data = await resp.json()
            if resp.status >= 400:
                raise PeerFailed(f"emulator {method} {path} answered {resp.status}: {data}")
            return data

    async def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = await self.control("GET", "/stats")
        return stats


@asynccontextmanager
async def emulator_process(
    name: str, module: str, app: tuple[str, str, str], secret_env: str, seed: int
) -> AsyncIterator[Emulator]:
    """A fresh emulator process (``module``: ``emulators.qbo`` or ``emulators.xero``) with
    one OAuth ``app`` (client id, secret, redirect URI) registered, on a port it bound
    itself (started by the stack's harness, aicollect/localstack.py). The secret goes in
    the environment, never on a command line."""
    client_id, client_secret, redirect_uri = app
    with tempfile.TemporaryDirectory(prefix=f"aicollect-{name}-") as run_dir:
        child = Child(
            name,
            [
                sys.executable,
                *("-m", module, "--host", "127.0.0.1", "--port", "0"),
                *("--client-id", client_id, "--redirect-uri", redirect_uri, "--seed", str(seed)),
            ],
            extra_env={secret_env: client_secret},
            ports_file=Path(run_dir) / "emulator.ports.json",
        )
        await child.start(dict(os.environ))
        try:
            try:
                port = (await child.bound_ports(within_s=30))["http"]
            except StartFailed as exc:
                raise PeerFailed(str(exc)) from exc
            async with aiohttp.ClientSession() as http:
                assert child.proc is not None
                yield Emulator(f"http://127.0.0.1:{port}", child.proc, http)
        finally:
            await child.stop(15)


def running_emulator() -> AbstractAsyncContextManager[Emulator]:
    """A fresh Intuit emulator (limits switched off by ``create_company``) holding the
    benchmark's OAuth app."""
    app = (CLIENT_ID, CLIENT_SECRET, REDIRECT_URI)
    return emulator_process("emulator", "emulators.qbo", app, CLIENT_SECRET_ENV, SEED)


async def create_company(emu: Emulator, invoices: int, customers: int) -> dict[str, Any]:
    await emu.control("PUT", "/faults", {"requests_per_minute": None, "max_concurrent": None})
    await emu.control(
        "POST",
        "/companies",
        {
            "realm_id": REALM,
            "name": COMPANY_NAME,
            "customers": customers,
            "invoices": invoices,
            "overdue_fraction": OVERDUE_FRACTION,
            "seed": SEED,
        },
    )
    for _ in range(3000):  # as bench/backfill.py: wait until every entity's JSON is rendered
        summary: dict[str, Any] = await emu.control("GET", f"/companies/{REALM}")
        if summary["prerendered"]:
            return summary
        await asyncio.sleep(0.2)
    raise PeerFailed("the emulator did not finish rendering the company")


async def oauth_grant(emu: Emulator) -> dict[str, Any]:
    """A real grant: headless consent on the authorize endpoint, then the code exchange."""
    query = urlencode(
        {
            "client_id": CLIENT_ID,
            "response_type": "code",
            "scope": SCOPE,
            "redirect_uri": REDIRECT_URI,
            "state": base64.urlsafe_b64encode(os.urandom(12)).decode(),
            "emulator_decision": "allow",
            "emulator_realm": REALM,
        }
    )
    async with emu.http.get(f"{emu.url}/connect/oauth2?{query}", allow_redirects=False) as resp:
        location = resp.headers.get("Location", "")
    params = parse_qs(urlsplit(location).query)
    if "code" not in params or params.get("realmId") != [REALM]:
        raise PeerFailed(f"consent did not return a code for realm {REALM}: {location!r}")
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    async with emu.http.post(
        f"{emu.url}/oauth2/v1/tokens/bearer",
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


async def start_date_covering_all(emu: Emulator, access_token: str) -> str:
    """Midnight UTC of the day before the oldest invoice's MetaData.LastUpdatedTime."""
    query = "SELECT * FROM Invoice ORDERBY MetaData.LastUpdatedTime STARTPOSITION 1 MAXRESULTS 1"
    async with emu.http.get(
        f"{emu.url}/v3/company/{REALM}/query",
        params={"query": query, "minorversion": "75"},
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
    ) as resp:
        body = await resp.json()
    oldest = datetime.fromisoformat(
        body["QueryResponse"]["Invoice"][0]["MetaData"]["LastUpdatedTime"]
    )
    day = (oldest.astimezone(UTC) - timedelta(days=1)).date()
    return f"{day.isoformat()}T00:00:00Z"


def realm_calls(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    def api(stats: dict[str, Any]) -> int:
        return int(stats.get("api_requests", {}).get(REALM, 0))

    def tokens(stats: dict[str, Any]) -> int:
        return sum(int(n) for n in stats.get("token_calls", {}).values())

    def throttled(stats: dict[str, Any]) -> int:
        return int(stats.get("throttled", {}).get(REALM, 0))

    return {
        "api": api(after) - api(before),
        "token": tokens(after) - tokens(before),
        "throttled_429": throttled(after) - throttled(before),
    }

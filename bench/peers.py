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
translating proxy in this script (one batch POST in, one emulator ``/query`` out).

Measured per tool: wall time, QBO HTTP calls (``/_emulator/stats`` before and after; the
tap's also at the proxy), token calls, peak resident memory of the tool's process
(``getrusage`` in the wrapper plus ``VmHWM`` polling), records emitted (checked: every
invoice exactly once) and records per second. Printed as a table with ratios and
written to ``bench/results/peers.json``. A peer that cannot be installed or run is
reported with its exact error and recorded as failed; the others still run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
from aiohttp import web

from aicollect.handshake import EMULATOR_CLIENT_SECRET_ENV as CLIENT_SECRET_ENV
from aicollect.localstack import Child, StartFailed
from bench._stack import RESULTS, write_result

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
WRAPPER = BENCH / "peers" / "peer_run.py"
VENVS = BENCH / ".venvs"

# The company of bench/backfill.py (bench/_stack.py create_company): same realm, seed, name.
REALM = "9130400000000001"
SEED = 7
OVERDUE_FRACTION = 0.3
COMPANY_NAME = "Bench Co"

CLIENT_ID = "peers-bench"
CLIENT_SECRET = "peers-bench-secret"  # noqa: S105  (a local emulator app, not a secret)
REDIRECT_URI = "http://127.0.0.1:9/peers-bench/callback"
SCOPE = "com.intuit.quickbooks.accounting"
TAP_RATE_LIMIT = 495  # singer.utils.ratelimit(495, 60) on the tap's every API call


@dataclass(frozen=True)
class Peer:
    key: str
    title: str
    requirement: str
    wrapper: str
    report_versions: tuple[str, ...]
    python_range: tuple[tuple[int, int], tuple[int, int]] | None = None
    # The interpreter its venv is built from (default: the one running the benchmark).
    interpreter: str | None = None


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


class PeerFailed(Exception):
    """A peer could not be installed or run; the message is what to print and record."""


def log(message: str) -> None:
    print(message, flush=True)


def tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# --------------------------------------------------------------------------- peer venvs


async def run_cmd(argv: list[str], *, time_limit: float) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), time_limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise PeerFailed(f"`{' '.join(argv)}` did not finish in {time_limit:.0f} s") from None
    text = out.decode(errors="replace")
    # This machine's pip config names local index folders that may be absent: noise only.
    text = "\n".join(x for x in text.splitlines() if not x.startswith("WARNING: Location "))
    if proc.returncode != 0:
        raise PeerFailed(f"`{' '.join(argv)}` exited {proc.returncode}:\n{tail(text)}")
    return text


async def ensure_venv(peer: Peer) -> tuple[Path, dict[str, str], float | None]:
    """The peer's own venv, created and installed on first use: (python, versions, seconds)."""
    if peer.python_range is not None:
        low, high = peer.python_range
        if not low <= sys.version_info[:2] < high:
            raise PeerFailed(
                f"{peer.requirement} needs Python >={low[0]}.{low[1]},<{high[0]}.{high[1]}; "
                f"this is {sys.version.split()[0]}"
            )
    venv = VENVS / peer.key
    python = venv / "bin" / "python"
    marker = venv / ".bench-installed"
    installed_in: float | None = None
    if not (python.exists() and marker.exists() and marker.read_text() == peer.requirement):
        log(f"  installing {peer.requirement} into {venv.relative_to(ROOT)} (first use) ...")
        started = time.perf_counter()
        VENVS.mkdir(parents=True, exist_ok=True)
        interpreter = peer.interpreter or sys.executable
        await run_cmd([interpreter, "-m", "venv", "--clear", str(venv)], time_limit=300)
        await run_cmd(
            [
                str(python),
                *("-m", "pip", "install", "--quiet", "--disable-pip-version-check"),
                *peer.requirement.split(),  # a pin, plus any missing dependency
            ],
            time_limit=900,
        )
        marker.write_text(peer.requirement)
        installed_in = round(time.perf_counter() - started, 1)
        log(f"  installed in {installed_in} s")
    listing = await run_cmd([str(python), "-m", "pip", "list", "--format=json"], time_limit=120)
    start = listing.find("[")
    packages = {p["name"].lower(): p["version"] for p in json.loads(listing[start:])}
    versions = {name: packages.get(name, "?") for name in peer.report_versions}
    return python, versions, installed_in


# --------------------------------------------------------------------------- the emulator


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
async def running_emulator() -> AsyncIterator[Emulator]:
    """A fresh emulator process (limits off) holding the benchmark company, on a port it
    bound itself (started by the stack's harness, aicollect/localstack.py)."""
    with tempfile.TemporaryDirectory(prefix="aicollect-peers-") as run_dir:
        child = Child(
            "emulator",
            [
                sys.executable,
                *("-m", "emulators.qbo", "--host", "127.0.0.1", "--port", "0"),
                *("--client-id", CLIENT_ID, "--redirect-uri", REDIRECT_URI, "--seed", str(SEED)),
            ],
            extra_env={CLIENT_SECRET_ENV: CLIENT_SECRET},  # never on a command line
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


# --------------------------------------------------------------------------- /batch proxy


@dataclass
class BatchProxy:
    """Intuit's ``POST /v3/company/{realm}/batch`` over the emulator's ``/query``.

    The emulator serves the QBO query API but not ``/batch``, which the Singer tap uses for
    every page. Each batch item becomes one emulator query (GET, the same statement); the
    item answers are spliced into ``{"BatchItemResponse": [{"bId": ..., <query answer>}]}``
    without re-parsing the page. Every other request is forwarded unchanged. The proxy
    logs each request the tool made, so the limiter window can be checked.
    """

    upstream: str
    requests: list[tuple[float, str, str, int]] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _http: aiohttp.ClientSession | None = None
    url: str = ""

    async def start(self) -> str:
        self._http = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_route("POST", "/v3/company/{realm}/batch", self._batch)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    def _log(self, request: web.Request, status: int) -> None:
        self.requests.append((time.monotonic(), request.method, request.path, status))

    @staticmethod
    def _headers(request: web.Request) -> dict[str, str]:
        keep = ("Authorization", "Accept", "Content-Type", "User-Agent")
        return {k: request.headers[k] for k in keep if k in request.headers}

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._http is not None
        async with self._http.request(
            request.method,
            f"{self.upstream}{request.path_qs}",
            headers=self._headers(request),
            data=await request.read() if request.can_read_body else None,
        ) as resp:
            body = await resp.read()
            self._log(request, resp.status)
            return web.Response(
                body=body,
                status=resp.status,
                headers={"Content-Type": resp.headers.get("Content-Type", "application/json")},
            )

    async def _batch(self, request: web.Request) -> web.StreamResponse:
        assert self._http is not None
        realm = request.match_info["realm"]
        try:
            items = (await request.json())["BatchItemRequest"]
        except (ValueError, KeyError, TypeError):
            self._log(request, 400)
            return web.json_response({"Fault": {"Error": [{"Message": "bad batch"}]}}, status=400)
        parts: list[bytes] = []
        headers = self._headers(request)
        headers.pop("Content-Type", None)
        for item in items:
            params = {"query": item.get("Query", "")}
            if "minorversion" in request.query:
                params["minorversion"] = request.query["minorversion"]
            async with self._http.get(
                f"{self.upstream}/v3/company/{realm}/query", params=params, headers=headers
            ) as resp:
                body = (await resp.read()).strip()
                if resp.status in (401, 403, 429) or resp.status >= 500:
                    # The whole batch fails the way the single request did.
                    self._log(request, resp.status)
                    return web.Response(
                        body=body, status=resp.status, content_type="application/json"
                    )
            bid = json.dumps(item.get("bId", "")).encode()
            if body.startswith(b"{") and body != b"{}":
                parts.append(b'{"bId":' + bid + b"," + body[1:])
            else:
                parts.append(b'{"bId":' + bid + b"}")
        self._log(request, 200)
        payload = b'{"BatchItemResponse":[' + b",".join(parts) + b"]}"
        return web.Response(body=payload, status=200, content_type="application/json")

    def window_peak(self, since: float, seconds: float = 60.0) -> int:
        """The most requests the tool made in any ``seconds`` window after ``since``."""
        times = [t for t, *_ in self.requests if t >= since]
        window: deque[float] = deque()
        peak = 0
        for t in times:
            window.append(t)
            while window and t - window[0] >= seconds:
                window.popleft()
            peak = max(peak, len(window))
        return peak


# --------------------------------------------------------------------------- running a peer


@dataclass
class ProcessRun:
    seconds: float
    returncode: int
    peak_rss_mb: float
    stats: dict[str, Any]
    stderr_tail: str
    spawn_epoch: float


def proc_cpu_seconds(pid: int) -> float:
    """User+system CPU time so far of a live process (Linux /proc)."""
    with suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def vm_hwm_mb(pid: int) -> float:
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def run_wrapped(
    python: Path,
    peer: Peer,
    *,
    base_url: str,
    token_url: str,
    peer_args: list[str],
    workdir: Path,
    label: str,
    time_limit: float,
) -> ProcessRun:
    """Runs the peer's wrapper in its venv: stdout to ``<label>.out``, stderr to ``.err``."""
    stats_file = workdir / f"{label}.stats.json"
    out_path, err_path = workdir / f"{label}.out", workdir / f"{label}.err"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(workdir)),
        "LANG": "C.UTF-8",
        "OAUTHLIB_INSECURE_TRANSPORT": "1",  # requests-oauthlib refuses http:// otherwise
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    argv = [
        str(python),
        str(WRAPPER),
        peer.wrapper,
        *("--base-url", base_url, "--token-url", token_url, "--stats", str(stats_file)),
        "--",
        *peer_args,
    ]
    with out_path.open("wb") as out, err_path.open("wb") as err:
        spawn_epoch = time.time()
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=out, stderr=err, cwd=workdir, env=env
        )
        peak = 0.0

        async def poll() -> None:
            nonlocal peak
            while True:
                peak = max(peak, vm_hwm_mb(proc.pid))
                await asyncio.sleep(0.2)

        poller = asyncio.create_task(poll())
        try:
            await asyncio.wait_for(proc.wait(), time_limit)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise PeerFailed(
                f"{peer.key} {label} did not finish within {time_limit:.0f} s (killed); "
                f"stderr:\n{tail(err_path.read_text(errors='replace'))}"
            ) from None
        finally:
            poller.cancel()
            with suppress(asyncio.CancelledError):
                await poller
        seconds = time.perf_counter() - started
    stats: dict[str, Any] = {}
    if stats_file.exists():
        stats = json.loads(stats_file.read_text())
    peak = max(peak, float(stats.get("max_rss_mb", 0.0)))
    return ProcessRun(
        seconds=seconds,
        returncode=proc.returncode if proc.returncode is not None else -1,
        peak_rss_mb=round(peak, 1),
        stats=stats,
        stderr_tail=tail(err_path.read_text(errors="replace")),
        spawn_epoch=spawn_epoch,
    )


def read_messages(path: Path) -> Iterator[dict[str, Any]]:
    """JSON lines of a Singer or Airbyte stdout (other lines skipped)."""
    with path.open("rb") as lines:
        for line in lines:
            if line.startswith(b"{"):
                with suppress(ValueError):
                    yield json.loads(line)


def check_records(ids: list[str], expected: int) -> dict[str, Any]:
    distinct = len(set(ids))
    return {
        "records": len(ids),
        "distinct_invoice_ids": distinct,
        "duplicates": len(ids) - distinct,
        "all_invoices_exactly_once": len(ids) == distinct == expected,
    }


def figures(run: ProcessRun, calls: dict[str, int], records: int) -> dict[str, Any]:
    ready = run.stats.get("ready_epoch")
    startup = round(ready - run.spawn_epoch, 3) if isinstance(ready, float) else None
    exit_epoch = run.stats.get("exit_epoch")
    after_startup = (
        round(exit_epoch - ready, 3)
        if isinstance(ready, float) and isinstance(exit_epoch, float)
        else None
    )
    return {
        "seconds": round(run.seconds, 3),
        "startup_seconds": startup,
        "seconds_after_startup": after_startup,
        "qbo_api_calls": calls["api"],
        "token_calls": calls["token"],
        "throttled_429": calls["throttled_429"],
        "peak_rss_mb": run.peak_rss_mb,
        "cpu_seconds": round(
            float(run.stats.get("cpu_user_s", 0.0)) + float(run.stats.get("cpu_system_s", 0.0)), 2
        ),
        "records_per_second": round(records / run.seconds, 1) if run.seconds else None,
        "returncode": run.returncode,
    }


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


class PeerFailedWith(PeerFailed):
    """A run that started and measured something but did not succeed."""

    def __init__(self, message: str, partial: dict[str, Any]) -> None:
        super().__init__(message)
        self.partial = partial


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


# --------------------------------------------------------------------------- ours


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


# --------------------------------------------------------------------------- report

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

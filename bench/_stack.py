"""Shared by the benchmarks: the real multi-process system (aicollect/localstack.py, every
process on a port it bound itself), a connected tenant, latency statistics and the JSON
result file."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import jwt

from aicollect import localstack
from aicollect.localstack import LocalStack
from examples import confirming

RESULTS = Path(__file__).resolve().parent / "results"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    result = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        **result,
    }
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


@asynccontextmanager
async def running_stack(
    *,
    extra_env: dict[str, str] | None = None,
    emulator_args: list[str] | None = None,
    replicas: int = 1,
) -> AsyncIterator[LocalStack]:
    """The system as ``aicollect run`` starts it (the harness in aicollect/localstack.py),
    on ``$AICOLLECT_BENCH_DATABASE_URL`` when set; ``replicas`` of each of our processes."""
    async with localstack.running_stack(
        extra_env={"AICOLLECT_LOG_LEVEL": "WARNING", **(extra_env or {})},
        emulator_args=emulator_args,
        database_url=os.environ.get("AICOLLECT_BENCH_DATABASE_URL"),
        replicas=replicas,
    ) as stack:
        yield stack


def bearer(stack: LocalStack, tenant_id: str) -> str:
    claims = {"sub": "bench", "tenant_id": tenant_id, "exp": int(time.time()) + 3600}
    return "Bearer " + jwt.encode(claims, stack.env["AICOLLECT_JWT_SECRET"], algorithm="HS256")


async def admin_call(stack: LocalStack, method: str, request: Any) -> Any:
    from aicollect.integration.v1 import admin_service_pb2_grpc as agrpc
    from aicollect.rpc.client import internal_channel

    addr = stack.integration_addr
    async with internal_channel(addr, stack.env["AICOLLECT_INTERNAL_TOKEN"]) as channel:
        return await getattr(agrpc.AdminServiceStub(channel), method)(request)


async def connect_tenant(stack: LocalStack, tenant_id: str, realm_id: str) -> None:
    """Enables the tenant and connects it to ``realm_id`` through the gateway's OAuth flow."""
    from aicollect.integration.v1 import admin_service_pb2 as apb

    await admin_call(
        stack,
        "SetTenantSettings",
        apb.SetTenantSettingsRequest(
            tenant_id=tenant_id, qbo_enabled=True, actor="bench", reason="benchmark"
        ),
    )
    # Keeps the gateway's browser-binding cookie, as the creditor's browser does.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(
            f"{stack.gateway_url}/v1/integrations/qbo/connect-url",
            headers={"Authorization": bearer(stack, tenant_id)},
        ) as resp:
            authorize = (await resp.json())["authorize_url"]
        url = f"{authorize}&emulator_decision=allow&emulator_realm={realm_id}"
        async with http.get(url, allow_redirects=False) as resp:
            callback = resp.headers["Location"]
        async with http.get(callback, allow_redirects=False) as resp:
            landed = resp.headers["Location"]
    if parse_qs(urlsplit(landed).query).get("qbo") != ["connected"]:
        raise SystemExit(f"could not connect the benchmark tenant: {landed}")


async def confirm_candidates(
    stack: LocalStack, tenant_id: str, *, future_mode: str = "automatic", within: float = 600.0
) -> dict[str, Any]:
    """What the creditor does once connected: waits for the first backfill (which stages
    the overdue invoices as placement candidates) and confirms them through the gateway's
    dashboard route, choosing ``future_mode``; returns the confirmation's JSON."""
    headers = {"Authorization": bearer(stack, tenant_id)}
    base = f"{stack.gateway_url}/v1/integrations/qbo"
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(base, headers=headers) as resp:
                phase = (await resp.json()).get("backfill", {}).get("phase")
            if phase == "BACKFILL_PHASE_COMPLETED":
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"the first backfill of {tenant_id} did not finish ({phase})")
            await asyncio.sleep(0.1)
        async with http.post(
            f"{base}/candidates/confirm",
            headers=headers,
            json={"future_mode": future_mode},
            timeout=aiohttp.ClientTimeout(total=within),
        ) as resp:
            body: dict[str, Any] = await resp.json()
            if resp.status != 200:
                raise SystemExit(f"the confirmation of {tenant_id} failed: {body}")
        await until_confirmed(http, base, headers, body, deadline)
        return body


async def until_confirmed(
    http: aiohttp.ClientSession,
    base: str,
    headers: dict[str, str],
    body: dict[str, Any],
    deadline: float,
) -> None:
    """A large confirmation answers while it is still being placed: waits until it is done
    (``examples/confirming.py``) and puts its final counts into ``body``."""

    async def page() -> dict[str, Any]:
        async with http.get(f"{base}/candidates", headers=headers, params={"page_size": "1"}) as r:
            listing: dict[str, Any] = await r.json()
            return listing

    try:
        confirmation = await confirming.until_confirmed(
            page, body, within=max(0.0, deadline - time.monotonic()), every=0.5
        )
    except confirming.StillPlacing as exc:
        raise SystemExit(str(exc)) from exc
    body.update(
        confirmation=confirmation,
        placed_count=confirmation["placed_count"],
        dropped_count=confirmation["dropped_count"],
    )
    if confirmation["state"] != confirming.CONFIRMED:
        raise SystemExit(f"the confirmation failed: {confirmation}")


async def create_company(
    stack: LocalStack, *, realm_id: str, customers: int, invoices: int, overdue: float = 0.3
) -> None:
    assert stack.emulator_url is not None
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{stack.emulator_url}/_emulator/companies",
            json={
                "realm_id": realm_id,
                "name": "Bench Co",
                "customers": customers,
                "invoices": invoices,
                "overdue_fraction": overdue,
                "seed": 7,
            },
            timeout=aiohttp.ClientTimeout(total=600),
        ) as resp,
    ):
        if resp.status not in (200, 201):
            raise SystemExit(f"emulator refused the company: {await resp.text()}")


__all__ = [
    "admin_call",
    "bearer",
    "confirm_candidates",
    "connect_tenant",
    "create_company",
    "percentile",
    "running_stack",
    "write_result",
]

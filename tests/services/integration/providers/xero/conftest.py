"""Xero through the whole system: the Xero emulator on loopback (beside the Intuit one),
a real PostgreSQL, the matcher, the integration service and the gateway on real ports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from emulators.xero import STATE_KEY, EmulatorConfig, EmulatorState, create_app
from tests.conftest import Emulator
from tests.helpers.emulators import ControlClient, served
from tests.stack import Stack, enable_tenant, full_stack

XERO_MINUTE_LIMIT = 60  # requests an organisation allows a minute at Xero


@dataclass
class Xero(ControlClient):
    """The Xero emulator: its control API and its in-memory state."""

    state: EmulatorState
    # Requests an organisation allows a minute, at the emulator and in our budget
    # (``settings()``): Xero's 60 unless a test's ``xero_minute_limit`` marker says more.
    minute_limit: int = XERO_MINUTE_LIMIT

    def settings(self) -> dict[str, str]:
        """The integration's settings matching this emulator's limits."""
        return {"AICOLLECT_XERO_REQUESTS_PER_MINUTE": str(self.minute_limit)}

    async def organisation(self, name: str, **spec: Any) -> str:
        spec.setdefault("contacts", 0)
        spec.setdefault("invoices", 0)
        created = await self.control("POST", "/organisations", {"name": name, **spec}, expect=201)
        tenant: str = created["tenant_id"]
        return tenant

    async def grants(self) -> list[dict[str, Any]]:
        body = await self.control("GET", "/grants")
        grants: list[dict[str, Any]] = body["grants"] if isinstance(body, dict) else body
        return grants

    async def connections(self, tenant_id: str) -> list[dict[str, Any]]:
        body = await self.control("GET", f"/connections?tenant_id={tenant_id}")
        found: list[dict[str, Any]] = body["connections"] if isinstance(body, dict) else body
        return found


@pytest_asyncio.fixture
async def xero(request: pytest.FixtureRequest) -> AsyncIterator[Xero]:
    """The Xero emulator. A test (or module) marked ``xero_minute_limit(n)`` gets
    organisations allowing ``n`` requests a minute, for tests whose subject is not pacing:
    Xero's 60 spreads a safety-net poll over several seconds."""
    marker = request.node.get_closest_marker("xero_minute_limit")
    minute_limit = int(marker.args[0]) if marker else XERO_MINUTE_LIMIT
    config = EmulatorConfig(webhook_time_scale=0.001, seed=3, minute_limit=minute_limit)
    app = create_app(config)
    async with served(app) as (base, http):
        yield Xero(base, http, app[STATE_KEY], minute_limit)


@pytest_asyncio.fixture
async def stack(engine: AsyncEngine, emulator: Emulator, xero: Xero) -> AsyncIterator[Stack]:
    async with full_stack(engine, emulator, xero_url=xero.base) as running:
        yield running


def browser_like() -> aiohttp.ClientSession:
    """A client that keeps cookies, as a browser does (loopback IPs included)."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


def xero_url(stack: Stack, path: str = "") -> str:
    return f"{stack.gateway_url}/v1/integrations/xero{path}"


async def connect_url(stack: Stack, http: aiohttp.ClientSession, tenant: str) -> str:
    async with http.post(
        xero_url(stack, "/connect-url"), headers={"Authorization": stack.bearer(tenant)}
    ) as resp:
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["authorize_url"])


async def consent_and_callback(
    stack: Stack,
    http: aiohttp.ClientSession,
    authorize_url: str,
    organisations: list[str],
    *,
    user: str = "xero-user-1",
) -> dict[str, list[str]]:
    """Xero's consent (the emulator's headless shortcut choosing ``organisations``), then
    our callback through the gateway; returns the dashboard landing's query."""
    consent = (
        f"{authorize_url}&emulator_decision=allow"
        f"&emulator_tenants={','.join(organisations)}&emulator_user={user}"
    )
    async with http.get(consent, allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        callback = resp.headers["Location"]
    assert callback.startswith(xero_url(stack, "/callback?")), callback
    assert "realmId" not in callback  # Xero's callback names no organisation
    async with http.get(callback, allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        landed = resp.headers["Location"]
    assert landed.startswith(stack.dashboard_url), landed
    return parse_qs(urlsplit(landed).query)


async def connect(
    stack: Stack, tenant: str, organisations: list[str], *, user: str = "xero-user-1"
) -> dict[str, list[str]]:
    """A tenant enabled for Xero connects through the gateway, choosing ``organisations``."""
    await enable_tenant(stack, tenant, "xero")
    async with browser_like() as http:
        authorize = await connect_url(stack, http, tenant)
        return await consent_and_callback(stack, http, authorize, organisations, user=user)


async def status(stack: Stack, tenant: str) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(xero_url(stack), headers={"Authorization": stack.bearer(tenant)}) as resp,
    ):
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body


async def disconnect(stack: Stack, tenant: str) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.delete(
            xero_url(stack),
            headers={"Authorization": stack.bearer(tenant)},
            json={"reason": "testing"},
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body

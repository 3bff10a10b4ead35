"""The whole system in one test process: matcher, integration and gateway on real ports
(each bound to port 0: the kernel picks, nothing can take it in between), the Intuit
emulator, and a stand-in dashboard page the browser lands on. The real processes are
started by aicollect/localstack.py (``running_stack``) instead."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy.ext.asyncio import AsyncEngine

from aicollect.db.engine import make_sessionmaker
from aicollect.rpc.client import internal_channel
from aicollect.settings import Settings
from gateway.app import create_app
from gateway.keys import Backends
from gateway.server import GatewayServer
from services.integration.deps import IntegrationDeps
from services.integration.server import build_server as build_integration
from services.matcher.server import build_server as build_matcher
from tests.conftest import CLIENT_ID, INTERNAL_TOKEN, Emulator, integration_settings
from tests.helpers.confirming import until_confirmed

JWT_SECRET = "test-jwt-secret-with-enough-entropy-0001"


@dataclass
class Stack:
    gateway_url: str
    dashboard_url: str
    emulator: Emulator
    integration_addr: str
    matcher_addr: str
    deps: IntegrationDeps
    xero_url: str = ""  # the Xero emulator, when the stack runs Xero too

    def bearer(self, tenant_id: str, *, subject: str = "jane@acme.test", ttl: int = 600) -> str:
        claims = {"sub": subject, "tenant_id": tenant_id, "exp": int(time.time()) + ttl}
        return "Bearer " + jwt.encode(claims, JWT_SECRET, algorithm="HS256")


async def _dashboard(request: web.Request) -> web.Response:
    return web.Response(
        text=f"<!doctype html><title>ai-collect dashboard</title><h1>{request.query_string}</h1>",
        content_type="text/html",
    )


@asynccontextmanager
async def full_stack(
    engine: AsyncEngine,
    emulator: Emulator,
    *,
    xero_url: str = "",
    extra: dict[str, str] | None = None,
) -> AsyncIterator[Stack]:
    """With ``xero_url`` (a running Xero emulator) the integration runs Xero too: our app
    is registered there with the gateway's callback and webhook URLs (tests.xero).
    ``extra``: more settings of the integration service."""
    # The gateway's socket first: its URL goes into the integration's settings (the OAuth
    # redirect URI), and the gateway needs the integration's address.
    listener = socket.create_server(("127.0.0.1", 0))
    gateway_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    callback = f"{gateway_url}/v1/integrations/qbo/callback"

    dashboard_app = web.Application()
    dashboard_app.router.add_get("/settings/integrations/qbo", _dashboard)
    dashboard = TestServer(dashboard_app, host="127.0.0.1", port=0)
    await dashboard.start_server()
    dashboard_url = str(dashboard.make_url("/settings/integrations/qbo"))

    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{emulator.url}/_emulator/apps",
            json={"client_id": CLIENT_ID, "redirect_uris": [callback]},
        ) as resp:
            assert resp.status in (200, 201), await resp.text()
        extra = dict(extra or {})
        if xero_url:
            extra = {**(await register_xero_app(http, xero_url, gateway_url)), **extra}
        settings = integration_settings(
            emulator.url,
            QBO_REDIRECT_URI=callback,
            AICOLLECT_DASHBOARD_URL=dashboard_url,
            AICOLLECT_JWT_SECRET=JWT_SECRET,
            **extra,
        )
        matcher = build_matcher(
            make_sessionmaker(engine), address="127.0.0.1:0", internal_token=INTERNAL_TOKEN
        )
        await matcher.start()
        matcher_addr = f"127.0.0.1:{matcher.port}"
        to_matcher = internal_channel(matcher_addr, INTERNAL_TOKEN)
        deps = IntegrationDeps.create(settings, engine, http, to_matcher)
        integration = build_integration(deps, address="127.0.0.1:0", internal_token=INTERNAL_TOKEN)
        await integration.start()
        integration_addr = f"127.0.0.1:{integration.port}"
        try:
            async with gateway_only(
                integration_addr,
                matcher_addr,
                sock=listener,
                AICOLLECT_DASHBOARD_URL=dashboard_url,
            ):
                yield Stack(
                    gateway_url,
                    dashboard_url,
                    emulator,
                    integration_addr,
                    matcher_addr,
                    deps,
                    xero_url,
                )
        finally:
            await integration.stop(None)
            await deps.inbox_writer.close()
            await to_matcher.close(None)
            await matcher.stop(None)
            await dashboard.close()
            listener.close()


XERO_CLIENT_ID = "XEROSTACKCLIENT"
XERO_CLIENT_SECRET = "xero-stack-secret-0001"
XERO_WEBHOOK_KEY = "xero-stack-webhook-key-0001"


async def register_xero_app(
    http: aiohttp.ClientSession, xero_url: str, gateway_url: str, **app: Any
) -> dict[str, str]:
    """Our app at the Xero emulator (callback and webhook on the gateway); the
    integration's settings for it."""
    callback = f"{gateway_url}/v1/integrations/xero/callback"
    body = {
        "client_id": XERO_CLIENT_ID,
        "client_secret": XERO_CLIENT_SECRET,
        "redirect_uris": [callback],
        "webhook_url": f"{gateway_url}/v1/webhooks/xero",
        "webhook_key": XERO_WEBHOOK_KEY,
        "scope_style": "granular",
        **app,
    }
    async with http.post(f"{xero_url}/_emulator/apps", json=body) as resp:
        assert resp.status in (200, 201), await resp.text()
    return {
        "XERO_CLIENT_ID": XERO_CLIENT_ID,
        "XERO_CLIENT_SECRET": XERO_CLIENT_SECRET,
        "XERO_REDIRECT_URI": callback,
        "XERO_WEBHOOK_KEY": XERO_WEBHOOK_KEY,
        "XERO_AUTHORIZE_URL": f"{xero_url}/identity/connect/authorize",
        "XERO_TOKEN_URL": f"{xero_url}/connect/token",
        "XERO_REVOCATION_URL": f"{xero_url}/connect/revocation",
        "XERO_API_BASE_URL": xero_url,
    }


async def enable_tenant(stack: Stack, tenant_id: str, provider: str = "qbo") -> None:
    from aicollect.integration.v1 import admin_service_pb2 as apb
    from aicollect.integration.v1 import admin_service_pb2_grpc as agrpc

    async with internal_channel(stack.integration_addr, INTERNAL_TOKEN) as channel:
        await agrpc.AdminServiceStub(channel).SetTenantSettings(
            apb.SetTenantSettingsRequest(
                tenant_id=tenant_id,
                qbo_enabled=provider == "qbo",
                provider_enabled={provider: True},
                actor="support",
                reason="beta",
            )
        )


@asynccontextmanager
async def gateway_only(
    integration_addr: str, matcher_addr: str, *, sock: socket.socket | None = None, **env: str
) -> AsyncIterator[str]:
    """A gateway on a real port (a free one, or the listening ``sock``) in front of running
    services, with extra settings ``env``; yields its base URL."""
    settings = Settings.from_env(
        {"AICOLLECT_INTERNAL_TOKEN": INTERNAL_TOKEN, "AICOLLECT_JWT_SECRET": JWT_SECRET, **env}
    )
    backends = Backends(
        integration=internal_channel(integration_addr, INTERNAL_TOKEN),
        matcher=internal_channel(matcher_addr, INTERNAL_TOKEN),
    )
    server = GatewayServer(
        create_app(settings, backends=backends),
        "127.0.0.1",
        0,
        read_timeout=settings.gateway_read_timeout_seconds,
        sock=sock,
    )
    await server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()
        await backends.integration.close(None)
        await backends.matcher.close(None)


async def confirm_first_backfill(
    stack: Stack,
    tenant_id: str,
    *,
    future_mode: str = "automatic",
    within: float = 30.0,
    provider: str = "qbo",
) -> dict[str, Any]:
    """What a creditor does after connecting: waits (as the dashboard's "initial sync in
    progress" does) for the first backfill to finish, then confirms the placement preview
    through the gateway, choosing ``future_mode``. Returns the confirmation's JSON."""
    headers = {"Authorization": stack.bearer(tenant_id)}
    base = f"{stack.gateway_url}/v1/integrations/{provider}"
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(base, headers=headers) as resp:
                assert resp.status == 200, await resp.text()
                phase = (await resp.json()).get("backfill", {}).get("phase")
            if phase == "BACKFILL_PHASE_COMPLETED":
                break
            assert time.monotonic() < deadline, f"the first backfill did not finish ({phase})"
            await asyncio.sleep(0.05)
        async with http.post(
            f"{base}/candidates/confirm", headers=headers, json={"future_mode": future_mode}
        ) as resp:
            body: dict[str, Any] = await resp.json()
            assert resp.status == 200, body

        async def call(method: str, path: str, **params: str) -> tuple[int, dict[str, Any]]:
            async with http.request(method, base + path, headers=headers, params=params) as r:
                return r.status, await r.json()

        # A large confirmation is still being placed when the reply comes: wait for it.
        confirmation = await until_confirmed(call, body, within=max(within, 120.0))
        body["confirmation"] = confirmation
        body["placed_count"] = confirmation["placed_count"]
        body["dropped_count"] = confirmation["dropped_count"]
        return body

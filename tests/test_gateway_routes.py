"""The dashboard's JSON endpoints and Intuit's callback, through the gateway over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import REALM_ID, Emulator
from tests.stack import Stack, enable_tenant, full_stack


@pytest_asyncio.fixture
async def stack(engine: AsyncEngine, emulator: Emulator) -> AsyncIterator[Stack]:
    async with full_stack(engine, emulator) as s:
        yield s


async def _connect_via_gateway(stack: Stack, http: aiohttp.ClientSession, tenant: str) -> str:
    """connect-url, Intuit's consent (headless), then the callback; returns the final URL."""
    async with http.post(
        f"{stack.gateway_url}/v1/integrations/qbo/connect-url",
        headers={"Authorization": stack.bearer(tenant)},
    ) as resp:
        assert resp.status == 200, await resp.text()
        authorize_url = (await resp.json())["authorize_url"]
    consent = f"{authorize_url}&emulator_decision=allow&emulator_realm={REALM_ID}"
    async with http.get(consent, allow_redirects=False) as resp:
        callback = resp.headers["Location"]
    assert callback.startswith(f"{stack.gateway_url}/v1/integrations/qbo/callback?")
    async with http.get(callback, allow_redirects=False) as resp:
        assert resp.status == 302
        assert resp.headers["Cache-Control"] == "no-store"
        return resp.headers["Location"]


async def test_connect_status_disconnect_through_the_gateway(stack: Stack) -> None:
    await enable_tenant(stack, "acme")
    async with aiohttp.ClientSession() as http:
        landed = await _connect_via_gateway(stack, http, "acme")
        assert landed == f"{stack.dashboard_url}?qbo=connected"
        auth = {"Authorization": stack.bearer("acme")}
        async with http.get(f"{stack.gateway_url}/v1/integrations/qbo", headers=auth) as resp:
            status = await resp.json()
        assert status["state"] == "CONNECTION_STATE_CONNECTED"
        assert status["realm_id"] == REALM_ID
        assert status["company_name"] == "Acme Widgets LLC"
        async with http.delete(
            f"{stack.gateway_url}/v1/integrations/qbo", headers=auth, json={"reason": "testing"}
        ) as resp:
            assert resp.status == 200
            body = await resp.json()
        assert body["state"] == "CONNECTION_STATE_DISCONNECTED"
        assert body["token_revocation"] == "TOKEN_REVOCATION_REVOKED"


async def test_dashboard_endpoints_require_a_valid_jwt(stack: Stack) -> None:
    import jwt as pyjwt

    url = f"{stack.gateway_url}/v1/integrations/qbo"
    forged = "Bearer " + pyjwt.encode(
        {"sub": "x", "tenant_id": "acme", "exp": 9999999999},
        "a-different-secret-of-the-same-length-01",
        algorithm="HS256",
    )
    async with aiohttp.ClientSession() as http:
        for headers in (
            {},
            {"Authorization": "Bearer not.a.jwt"},
            {"Authorization": forged},
            {"Authorization": stack.bearer("acme", ttl=-120)},
        ):
            async with http.get(url, headers=headers) as resp:
                assert resp.status == 401
                body = await resp.json()
                assert body["error"]["code"] == "UNAUTHENTICATED"
                assert "Traceback" not in await resp.text()


async def test_a_tenant_never_acts_on_another_tenants_connection(stack: Stack) -> None:
    await enable_tenant(stack, "acme")
    await enable_tenant(stack, "globex")
    async with aiohttp.ClientSession() as http:
        await _connect_via_gateway(stack, http, "acme")
        globex = {"Authorization": stack.bearer("globex")}
        # The body cannot name a tenant: only the token's tenant counts.
        async with http.delete(
            f"{stack.gateway_url}/v1/integrations/qbo?tenant_id=acme",
            headers=globex,
            json={"tenant_id": "acme"},
        ) as resp:
            assert resp.status == 404
        async with http.get(f"{stack.gateway_url}/v1/integrations/qbo", headers=globex) as resp:
            assert (await resp.json())["state"] == "CONNECTION_STATE_NOT_CONNECTED"
        acme = {"Authorization": stack.bearer("acme")}
        async with http.get(f"{stack.gateway_url}/v1/integrations/qbo", headers=acme) as resp:
            assert (await resp.json())["state"] == "CONNECTION_STATE_CONNECTED"


async def test_connect_url_refusal_is_a_clear_json_error(stack: Stack) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{stack.gateway_url}/v1/integrations/qbo/connect-url",
            headers={"Authorization": stack.bearer("not-enabled")},
        ) as resp,
    ):
        assert resp.status == 409
        body = await resp.json()
    assert body["error"]["reason"] == "INTEGRATION_DISABLED"
    assert "qbo_enabled" in body["error"]["message"]


@pytest.mark.parametrize(
    "query",
    [
        "",
        "state=forged&code=x&realmId=1",
        "error=access_denied&state=forged",
        "state=x&code=y&realmId=1&redirect_uri=https://evil.example/steal",
        "state=" + "A" * 5000,
    ],
)
async def test_callback_always_redirects_to_the_configured_dashboard(
    stack: Stack, query: str
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{stack.gateway_url}/v1/integrations/qbo/callback?{query}", allow_redirects=False
        ) as resp,
    ):
        assert resp.status == 302
        location = resp.headers["Location"]
    assert location.startswith(stack.dashboard_url + "?")
    assert parse_qs(urlsplit(location).query)["qbo"] == ["error"]
    assert "evil" not in location


async def test_request_id_reaches_the_services_log_lines(stack: Stack) -> None:
    import io
    import json
    import logging

    from aicollect.logs import JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("test"))
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.INFO)
    try:
        await enable_tenant(stack, "acme")
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{stack.gateway_url}/v1/integrations/qbo/connect-url",
                headers={"Authorization": stack.bearer("acme"), "X-Request-Id": "trace-4711"},
            ) as resp,
        ):
            assert resp.status == 200
            assert resp.headers["X-Request-Id"] == "trace-4711"
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    minted = [line for line in lines if line["message"] == "minted connect URL"]
    assert minted
    assert minted[0]["request_id"] == "trace-4711"
    assert minted[0]["tenant_id"] == "acme"

"""The dashboard's JSON endpoints and Intuit's callback, through the gateway over HTTP."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import grpc
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from sqlalchemy.ext.asyncio import AsyncEngine

from aicollect.integration.v1 import integration_service_pb2 as pb
from aicollect.rpc.client import internal_channel
from aicollect.settings import Settings
from gateway.app import create_app
from gateway.keys import Backends
from gateway.routes import BINDING_COOKIE, CALLBACK_PATH
from tests.conftest import INTERNAL_TOKEN, REALM_ID, Emulator
from tests.stack import JWT_SECRET, Stack, enable_tenant, full_stack


@pytest_asyncio.fixture
async def stack(engine: AsyncEngine, emulator: Emulator) -> AsyncIterator[Stack]:
    async with full_stack(engine, emulator) as s:
        yield s


def browser_like() -> aiohttp.ClientSession:
    """A client that keeps cookies, as a browser does (loopback IPs included)."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def _authorize_url(stack: Stack, http: aiohttp.ClientSession, tenant: str) -> str:
    async with http.post(
        f"{stack.gateway_url}/v1/integrations/qbo/connect-url",
        headers={"Authorization": stack.bearer(tenant)},
    ) as resp:
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["authorize_url"])


async def _consent_and_callback(
    stack: Stack, http: aiohttp.ClientSession, authorize_url: str
) -> str:
    """Intuit's consent (headless), then the callback; returns where the browser lands."""
    consent = f"{authorize_url}&emulator_decision=allow&emulator_realm={REALM_ID}"
    async with http.get(consent, allow_redirects=False) as resp:
        callback = resp.headers["Location"]
    assert callback.startswith(f"{stack.gateway_url}/v1/integrations/qbo/callback?")
    async with http.get(callback, allow_redirects=False) as resp:
        assert resp.status == 302
        assert resp.headers["Cache-Control"] == "no-store"
        return resp.headers["Location"]


async def _connect_via_gateway(stack: Stack, http: aiohttp.ClientSession, tenant: str) -> str:
    """connect-url, Intuit's consent (headless), then the callback; returns the final URL."""
    return await _consent_and_callback(stack, http, await _authorize_url(stack, http, tenant))


async def test_connect_status_disconnect_through_the_gateway(stack: Stack) -> None:
    await enable_tenant(stack, "acme")
    async with browser_like() as http:
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
    async with browser_like() as http:
        assert (await _connect_via_gateway(stack, http, "acme")).endswith("?qbo=connected")
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


def _set_cookie(resp: aiohttp.ClientResponse) -> Any:
    headers = resp.headers.getall("Set-Cookie", [])
    assert len(headers) == 1, headers
    return SimpleCookie(headers[0])[BINDING_COOKIE]


async def test_connect_url_binds_the_state_to_the_browser_with_an_httponly_cookie(
    stack: Stack,
) -> None:
    await enable_tenant(stack, "acme")
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{stack.gateway_url}/v1/integrations/qbo/connect-url",
            headers={"Authorization": stack.bearer("acme")},
        ) as resp,
    ):
        assert resp.status == 200
        body = await resp.json()
        cookie = _set_cookie(resp)
        assert resp.headers["Cache-Control"] == "no-store"
    assert set(body) == {"authorize_url", "state_expire_time"}  # the binding is cookie-only
    assert len(cookie.value) >= 43
    assert cookie.value not in str(body)
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == CALLBACK_PATH
    assert not cookie["secure"]  # local mode: plain-http loopback
    assert 590 <= int(cookie["max-age"]) <= 600  # the state's lifetime


async def test_the_binding_cookie_is_secure_outside_local_mode(stack: Stack) -> None:
    await enable_tenant(stack, "acme")
    settings = Settings.from_env(
        {
            "AICOLLECT_ENV": "production",
            "AICOLLECT_INTERNAL_TOKEN": INTERNAL_TOKEN,
            "AICOLLECT_JWT_SECRET": JWT_SECRET,
            "AICOLLECT_DASHBOARD_URL": stack.dashboard_url,
        }
    )
    backends = Backends(
        integration=internal_channel(stack.integration_addr, INTERNAL_TOKEN),
        matcher=internal_channel(stack.matcher_addr, INTERNAL_TOKEN),
    )
    server = TestServer(create_app(settings, backends=backends), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                str(server.make_url("/v1/integrations/qbo/connect-url")),
                headers={"Authorization": stack.bearer("acme")},
            ) as resp,
        ):
            assert resp.status == 200
            cookie = _set_cookie(resp)
    finally:
        await server.close()
        await backends.integration.close(None)
        await backends.matcher.close(None)
    assert cookie["secure"] is True
    assert cookie["httponly"] is True


async def test_another_browser_cannot_complete_a_connect_link(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """The phished bookkeeper: their client opens the tenant's authorize link."""
    caplog.set_level(logging.DEBUG)
    await enable_tenant(stack, "acme")
    async with browser_like() as creditor, browser_like() as bookkeeper:
        authorize_url = await _authorize_url(stack, creditor, "acme")
        binding = next(c.value for c in creditor.cookie_jar if c.key == BINDING_COOKIE)
        landed = await _consent_and_callback(stack, bookkeeper, authorize_url)
    assert landed == f"{stack.dashboard_url}?qbo=error&reason=browser_mismatch"
    assert stack.emulator.state.oauth.token_calls["authorization_code"] == 0
    status = await stack.deps.connections.status("acme")
    assert status.state == "not_connected"
    # Neither the state nor the binding reaches our logs (the emulator's are Intuit's).
    state = parse_qs(urlsplit(authorize_url).query)["state"][0]
    ours = [r for r in caplog.records if r.name != "aiohttp.access"]
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in ours)
    assert "browser_mismatch" in logged
    assert state not in logged
    assert binding not in logged


async def test_the_cookie_is_cleared_once_its_state_is_used(stack: Stack) -> None:
    await enable_tenant(stack, "acme")
    async with browser_like() as http:
        assert (await _connect_via_gateway(stack, http, "acme")).endswith("?qbo=connected")
        assert not [c for c in http.cookie_jar if c.key == BINDING_COOKIE]


async def test_connect_url_allows_the_dashboard_origin_with_credentials(stack: Stack) -> None:
    dashboard = "{0.scheme}://{0.netloc}".format(urlsplit(stack.dashboard_url))
    url = f"{stack.gateway_url}/v1/integrations/qbo/connect-url"
    async with aiohttp.ClientSession() as http:
        preflight = {
            "Origin": dashboard,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        }
        async with http.options(url, headers=preflight) as resp:
            assert resp.status == 204
            assert resp.headers["Access-Control-Allow-Origin"] == dashboard
            assert resp.headers["Access-Control-Allow-Credentials"] == "true"
            assert "POST" in resp.headers["Access-Control-Allow-Methods"]
            assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
        async with http.options(url, headers={**preflight, "Origin": "https://evil.example"}) as r:
            assert "Access-Control-Allow-Origin" not in r.headers
            assert "Access-Control-Allow-Credentials" not in r.headers
        async with http.post(url, headers={"Origin": dashboard}) as resp:
            assert resp.status == 401  # errors are readable by the dashboard too
            assert resp.headers["Access-Control-Allow-Origin"] == dashboard


class HangingIntegration:
    """A real gRPC server whose CompleteConnection accepts the call and never answers."""

    def __init__(self) -> None:
        self.calls = 0
        self.server = grpc.aio.server()
        handler = grpc.unary_unary_rpc_method_handler(
            self._hang,
            request_deserializer=pb.CompleteConnectionRequest.FromString,
            response_serializer=pb.CompleteConnectionResponse.SerializeToString,
        )
        self.server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "aicollect.integration.v1.IntegrationService",
                    {"CompleteConnection": handler},
                ),
            )
        )
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    async def _hang(
        self, request: pb.CompleteConnectionRequest, context: Any
    ) -> pb.CompleteConnectionResponse:
        self.calls += 1
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def test_the_callback_bound_defaults_to_ten_seconds() -> None:
    assert Settings.from_env({}).callback_timeout_seconds == 10.0
    with pytest.raises(ValueError, match="AICOLLECT_CALLBACK_TIMEOUT_SECONDS"):
        Settings.from_env({"AICOLLECT_CALLBACK_TIMEOUT_SECONDS": "0"})


@pytest.mark.parametrize("bound", [1.0, 2.5])
async def test_callback_answers_within_its_bound_when_the_service_hangs(bound: float) -> None:
    hanging = HangingIntegration()
    await hanging.server.start()
    port = hanging.port
    dashboard = "https://app.ai-collect.test/settings/integrations/qbo"
    settings = Settings.from_env(
        {
            "AICOLLECT_INTERNAL_TOKEN": INTERNAL_TOKEN,
            "AICOLLECT_DASHBOARD_URL": dashboard,
            "AICOLLECT_CALLBACK_TIMEOUT_SECONDS": str(bound),
        }
    )
    backends = Backends(
        integration=internal_channel(f"127.0.0.1:{port}", INTERNAL_TOKEN),
        matcher=internal_channel(f"127.0.0.1:{port}", INTERNAL_TOKEN),
    )
    gateway = TestServer(create_app(settings, backends=backends), host="127.0.0.1", port=0)
    await gateway.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            started = time.monotonic()
            async with http.get(
                str(gateway.make_url("/v1/integrations/qbo/callback")),
                params={"state": "s", "code": "c", "realmId": "1"},
                allow_redirects=False,
            ) as resp:
                elapsed = time.monotonic() - started
                assert resp.status == 302
                location = resp.headers["Location"]
    finally:
        await gateway.close()
        await backends.integration.close(None)
        await backends.matcher.close(None)
        await hanging.server.stop(None)
    assert hanging.calls == 1  # the call reached the service, which never answered
    assert location == f"{dashboard}?qbo=error&reason=unavailable"
    assert bound - 0.05 <= elapsed < bound + 2.0

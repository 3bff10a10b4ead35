"""Fixtures: a real Xero emulator on 127.0.0.1:0 and a real webhook receiver
(tests/helpers/sink.py)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from multidict import CIMultiDictProxy

from emulators.xero import STATE_KEY, AppConfig, EmulatorConfig, EmulatorState, create_app
from tests.helpers.emulators import ControlClient, served
from tests.helpers.sink import WebhookSink, webhook_receiver

CLIENT_ID = "XEROTESTCLIENT"
CLIENT_SECRET = "xero-test-secret"
REDIRECT_URI = "http://127.0.0.1:9/xero/callback"
WEBHOOK_KEY = "xero-webhook-key-123"
READ_SCOPES = (
    "offline_access accounting.transactions.read accounting.contacts.read accounting.settings.read"
)
API = "/api.xro/2.0"


def basic(client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def claims(access_token: str) -> dict[str, Any]:
    """The access token's claims (a JWT, as Xero's is), read without checking the signature."""
    decoded: dict[str, Any] = jwt.decode(access_token, options={"verify_signature": False})
    return decoded


@dataclass
class Tokens:
    access_token: str
    refresh_token: str
    body: dict[str, Any]


@dataclass
class Emulator(ControlClient):
    state: EmulatorState

    async def organisation(self, **spec: Any) -> str:
        created = await self.control("POST", "/organisations", spec, expect=201)
        tenant: str = created["tenant_id"]
        return tenant

    async def authorize(
        self,
        tenants: list[str],
        *,
        scope: str = READ_SCOPES,
        user: str | None = None,
        **extra: str,
    ) -> str:
        """The headless consent shortcut; returns the code."""
        params = {
            "client_id": CLIENT_ID,
            "response_type": "code",
            "scope": scope,
            "redirect_uri": REDIRECT_URI,
            "state": "st-1",
            "emulator_decision": "allow",
            "emulator_tenants": ",".join(tenants),
            **extra,
        }
        if user is not None:
            params["emulator_user"] = user
        async with self.http.get(
            f"{self.base}/identity/connect/authorize", params=params, allow_redirects=False
        ) as resp:
            assert resp.status == 302, await resp.text()
            query = parse_qs(urlsplit(resp.headers["Location"]).query)
        assert query["state"] == ["st-1"]
        return query["code"][0]

    async def token(
        self, form: dict[str, str], *, auth: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": auth or basic(), "Accept": "application/json"}
        async with self.http.post(f"{self.base}/connect/token", data=form, headers=headers) as r:
            return r.status, await r.json()

    async def connect(
        self, tenants: list[str], *, scope: str = READ_SCOPES, user: str | None = None
    ) -> Tokens:
        code = await self.authorize(tenants, scope=scope, user=user)
        status, body = await self.token(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
        )
        assert status == 200, body
        return Tokens(body["access_token"], body.get("refresh_token", ""), body)

    async def refresh(self, refresh_token: str) -> tuple[int, dict[str, Any]]:
        return await self.token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    async def get(
        self,
        tokens: Tokens | str,
        path: str,
        *,
        tenant: str | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, CIMultiDictProxy[str]]:
        access = tokens if isinstance(tokens, str) else tokens.access_token
        all_headers = {"Authorization": f"Bearer {access}", "Accept": "application/json"}
        if tenant is not None:
            all_headers["xero-tenant-id"] = tenant
        all_headers.update(headers or {})
        async with self.http.get(f"{self.base}{path}", params=params, headers=all_headers) as r:
            raw = await r.read()
            body: Any = None
            if raw and r.content_type == "application/json":
                body = await r.json()
            elif raw:
                body = raw.decode()
            return r.status, body, r.headers

    async def api(
        self, tokens: Tokens, tenant: str, resource: str, **params: str
    ) -> tuple[int, Any, CIMultiDictProxy[str]]:
        headers = {}
        since = params.pop("if_modified_since", None)
        if since is not None:
            headers["If-Modified-Since"] = since
        return await self.get(
            tokens, f"{API}/{resource}", tenant=tenant, params=params, headers=headers
        )

    async def advance(self, seconds: float) -> None:
        await self.control("POST", "/clock", {"advance_seconds": seconds})


def make_config(**overrides: Any) -> EmulatorConfig:
    config = EmulatorConfig(
        apps=[
            AppConfig(
                client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET,
                redirect_uris=[REDIRECT_URI],
                webhook_key=WEBHOOK_KEY,
            )
        ],
        webhook_time_scale=0.001,
    )
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return make_config()


@pytest.fixture
async def emulator(emulator_config: EmulatorConfig) -> AsyncIterator[Emulator]:
    app = create_app(emulator_config)
    async with served(app) as (base, http):
        yield Emulator(base, http, app[STATE_KEY])


@pytest.fixture
async def webhook_sink() -> AsyncIterator[WebhookSink]:
    async with webhook_receiver() as sink:
        yield sink

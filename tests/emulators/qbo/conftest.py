"""Fixtures: a real emulator on 127.0.0.1:0, and a real webhook receiver
(tests/helpers/sink.py)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from multidict import CIMultiDictProxy

from emulators.qbo import STATE_KEY, AppConfig, EmulatorConfig, EmulatorState, create_app
from tests.helpers.emulators import ControlClient, served
from tests.helpers.sink import WebhookSink, webhook_receiver

CLIENT_ID = "test-client"
CLIENT_SECRET = "test-secret"
REDIRECT_URI = "http://127.0.0.1:9/callback"
VERIFIER = "verifier-token-123"
SCOPE = "com.intuit.quickbooks.accounting"


def basic(client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@dataclass
class Tokens:
    access_token: str
    refresh_token: str
    realm_id: str
    body: dict[str, Any]


@dataclass
class Emulator(ControlClient):
    state: EmulatorState

    async def company(self, **spec: Any) -> str:
        created = await self.control("POST", "/companies", spec, expect=201)
        realm: str = created["realm_id"]
        return realm

    async def authorize(self, realm_id: str, *, client_id: str = CLIENT_ID, **extra: str) -> str:
        """The headless consent shortcut; returns the code."""
        params = {
            "client_id": client_id,
            "response_type": "code",
            "scope": SCOPE,
            "redirect_uri": REDIRECT_URI,
            "state": "st-1",
            "emulator_decision": "allow",
            "emulator_realm": realm_id,
            **extra,
        }
        async with self.http.get(
            f"{self.base}/connect/oauth2", params=params, allow_redirects=False
        ) as resp:
            assert resp.status == 302, await resp.text()
            query = parse_qs(urlsplit(resp.headers["Location"]).query)
        assert query["state"] == ["st-1"]
        assert query["realmId"] == [realm_id]
        return query["code"][0]

    async def token(
        self,
        form: dict[str, str],
        *,
        auth: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        all_headers = {"Authorization": auth or basic(), "Accept": "application/json"}
        all_headers.update(headers or {})
        async with self.http.post(
            f"{self.base}/oauth2/v1/tokens/bearer", data=form, headers=all_headers
        ) as resp:
            return resp.status, await resp.json()

    async def connect(self, realm_id: str, *, client_id: str = CLIENT_ID) -> Tokens:
        code = await self.authorize(realm_id, client_id=client_id)
        auth = basic(client_id, self.state.oauth.apps[client_id].client_secret)
        status, body = await self.token(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI},
            auth=auth,
        )
        assert status == 200, body
        return Tokens(body["access_token"], body["refresh_token"], realm_id, body)

    async def api(
        self,
        tokens: Tokens,
        path: str,
        *,
        params: dict[str, str] | None = None,
        method: str = "GET",
        data: str | None = None,
        content_type: str = "application/text",
    ) -> tuple[int, Any, CIMultiDictProxy[str]]:
        headers = {"Authorization": f"Bearer {tokens.access_token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        url = f"{self.base}/v3/company/{tokens.realm_id}/{path}"
        async with self.http.request(method, url, params=params, data=data, headers=headers) as r:
            return r.status, await r.json(content_type=None), r.headers

    async def query(self, tokens: Tokens, text: str) -> tuple[int, Any]:
        status, body, _ = await self.api(
            tokens, "query", params={"query": text, "minorversion": "75"}
        )
        return status, body


def make_config(**overrides: Any) -> EmulatorConfig:
    config = EmulatorConfig(
        apps=[
            AppConfig(
                client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET,
                redirect_uris=[REDIRECT_URI],
                verifier_token=VERIFIER,
            )
        ],
        prerender=False,
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

"""The dashboard's bearer JWT through a real gateway: the scheme is case-insensitive
(RFC 6750), and ``aud``/``iss`` are checked exactly when configured."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import jwt
import pytest

from tests.stack import JWT_SECRET, gateway_only

AUDIENCE = "ai-collect-gateway"
ISSUER = "https://dashboard.ai-collect.test"


def _token(**claims: Any) -> str:
    base = {"sub": "jane@acme.test", "tenant_id": "acme", "exp": int(time.time()) + 600}
    return jwt.encode({**base, **claims}, JWT_SECRET, algorithm="HS256")


async def _status(url: str, authorization: str) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{url}/v1/integrations/qbo", headers={"Authorization": authorization}) as resp,
    ):
        return resp.status, await resp.json()


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
async def test_the_bearer_scheme_is_case_insensitive(
    integration_addr: str, matcher_addr: str, scheme: str
) -> None:
    async with gateway_only(integration_addr, matcher_addr) as url:
        status, body = await _status(url, f"{scheme} {_token()}")
    assert status == 200, body
    assert body["state"] == "CONNECTION_STATE_NOT_CONNECTED"


@pytest.mark.parametrize("authorization", ["Basic " + "x" * 20, "Bearer", "Bearer   ", "Token x"])
async def test_other_schemes_and_empty_tokens_are_refused(
    integration_addr: str, matcher_addr: str, authorization: str
) -> None:
    async with gateway_only(integration_addr, matcher_addr) as url:
        status, body = await _status(url, authorization)
    assert status == 401
    assert body["error"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    ("claims", "refused_because"),
    [
        ({}, "'aud'"),  # neither claim
        ({"iss": ISSUER}, "'aud'"),
        ({"aud": AUDIENCE}, "'iss'"),
        ({"aud": "someone-else", "iss": ISSUER}, "(aud)"),
        ({"aud": AUDIENCE, "iss": "https://evil.example"}, "(iss)"),
        ({"aud": [AUDIENCE + "-2"], "iss": ISSUER}, "(aud)"),
    ],
)
async def test_a_wrong_or_missing_audience_or_issuer_is_refused_when_configured(
    integration_addr: str, matcher_addr: str, claims: dict[str, Any], refused_because: str
) -> None:
    async with gateway_only(
        integration_addr,
        matcher_addr,
        AICOLLECT_JWT_AUDIENCE=AUDIENCE,
        AICOLLECT_JWT_ISSUER=ISSUER,
    ) as url:
        status, body = await _status(url, f"Bearer {_token(**claims)}")
        ok_status, _ = await _status(url, f"Bearer {_token(aud=AUDIENCE, iss=ISSUER)}")
        listed, _ = await _status(url, f"Bearer {_token(aud=['other', AUDIENCE], iss=ISSUER)}")
    assert status == 401
    assert body["error"]["code"] == "UNAUTHENTICATED"
    assert refused_because in body["error"]["message"]
    assert ok_status == 200  # the same gateway accepts a token with the right claims
    assert listed == 200  # aud may be a list that names us


@pytest.mark.parametrize(
    "claims", [{}, {"aud": "anything"}, {"iss": "anyone"}, {"aud": ["a", "b"], "iss": "x"}]
)
async def test_audience_and_issuer_are_not_checked_when_not_configured(
    integration_addr: str, matcher_addr: str, claims: dict[str, Any]
) -> None:
    async with gateway_only(integration_addr, matcher_addr) as url:
        status, body = await _status(url, f"Bearer {_token(**claims)}")
    assert status == 200, body

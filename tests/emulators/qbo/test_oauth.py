"""OAuth 2.0 as Intuit does it: consent page, code exchange, rotation, revoke, disconnect."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

from tests.emulators.qbo.conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    SCOPE,
    Emulator,
    basic,
)

AUTH_PARAMS = {
    "client_id": CLIENT_ID,
    "response_type": "code",
    "scope": SCOPE,
    "redirect_uri": REDIRECT_URI,
    "state": "abc123",
}


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inputs: dict[str, str] = {}
        self.options: list[str] = []
        self.buttons: list[tuple[str, str]] = []
        self.form_action = ""
        self._button: tuple[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.form_action = a.get("action", "")
        elif tag == "input":
            self.inputs[a["name"]] = a.get("value", "")
        elif tag == "option":
            self.options.append(a["value"])
        elif tag == "button":
            self._button = (a.get("value", ""), "")

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button = (self._button[0], self._button[1] + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self._button is not None:
            self.buttons.append(self._button)
            self._button = None


async def test_discovery_document_points_at_the_emulator(emulator: Emulator) -> None:
    async with emulator.http.get(f"{emulator.base}/.well-known/openid_configuration") as resp:
        assert resp.status == 200
        assert resp.headers["intuit_tid"]
        doc = await resp.json()
    assert doc["authorization_endpoint"] == f"{emulator.base}/connect/oauth2"
    assert doc["token_endpoint"] == f"{emulator.base}/oauth2/v1/tokens/bearer"
    assert doc["revocation_endpoint"] == f"{emulator.base}/v2/oauth2/tokens/revoke"
    assert "client_secret_basic" in doc["token_endpoint_auth_methods_supported"]


async def test_consent_page_picks_a_company_and_connects(emulator: Emulator) -> None:
    realm_a = await emulator.company(name="Alpha Plumbing")
    realm_b = await emulator.company(name="Beta & <Bakery>")
    async with emulator.http.get(f"{emulator.base}/connect/oauth2", params=AUTH_PARAMS) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        html = await resp.text()
    assert "Beta &amp; &lt;Bakery&gt;" in html  # escaped
    form = _Form()
    form.feed(html)
    assert form.options == [realm_a, realm_b]
    assert sorted(form.buttons) == [("allow", "Connect"), ("deny", "Cancel")]
    assert form.inputs["state"] == "abc123"
    # The user picks Beta and presses Connect.
    async with emulator.http.post(
        f"{emulator.base}{form.form_action}",
        data={**form.inputs, "realm_id": realm_b, "decision": "allow"},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 302
        location = resp.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["abc123"]
    assert query["realmId"] == [realm_b]
    assert len(query["code"][0]) <= 512


async def test_cancel_redirects_with_access_denied(emulator: Emulator) -> None:
    await emulator.company()
    async with emulator.http.post(
        f"{emulator.base}/connect/oauth2",
        data={**AUTH_PARAMS, "decision": "deny"},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 302
        query = parse_qs(urlsplit(resp.headers["Location"]).query)
    assert query == {"error": ["access_denied"], "state": ["abc123"]}
    # The headless shortcut does the same.
    async with emulator.http.get(
        f"{emulator.base}/connect/oauth2",
        params={**AUTH_PARAMS, "emulator_decision": "deny"},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 302
        assert "error=access_denied&state=abc123" in resp.headers["Location"]


async def test_authorize_validates_client_redirect_and_scope(emulator: Emulator) -> None:
    url = f"{emulator.base}/connect/oauth2"
    for bad in ({"client_id": "nope"}, {"redirect_uri": "http://evil.example/cb"}):
        async with emulator.http.get(url, params={**AUTH_PARAMS, **bad}) as resp:
            assert resp.status == 400  # an error page, never a redirect to an unregistered URI
            assert "can't connect" in await resp.text()
    for bad, error in (({"response_type": "token"}, "unsupported_response_type"),
                       ({"scope": ""}, "invalid_scope"),
                       ({"scope": "bogus.scope"}, "invalid_scope")):  # fmt: skip
        async with emulator.http.get(
            url, params={**AUTH_PARAMS, **bad}, allow_redirects=False
        ) as resp:
            assert resp.status == 302
            assert f"error={error}" in resp.headers["Location"]


async def test_code_exchange_returns_intuit_token_fields(emulator: Emulator) -> None:
    realm = await emulator.company()
    code = await emulator.authorize(realm)
    status, body = await emulator.token(
        {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    )
    assert status == 200
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["x_refresh_token_expires_in"] == 8_726_400
    assert "x_refresh_token_hard_expires_in" not in body
    assert "id_token" not in body
    assert "realmId" not in body
    assert body["access_token"] != body["refresh_token"]


async def test_code_is_single_use_and_replay_revokes(emulator: Emulator) -> None:
    realm = await emulator.company()
    code = await emulator.authorize(realm)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    status, first = await emulator.token(form)
    assert status == 200
    status, again = await emulator.token(form)
    assert (status, again["error"]) == (400, "invalid_grant")
    # RFC 6749 4.1.2: the tokens that code produced no longer work.
    status, refreshed = await emulator.token(
        {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    )
    assert (status, refreshed["error"]) == (400, "invalid_grant")


async def test_code_expires_and_redirect_uri_must_match(emulator: Emulator) -> None:
    realm = await emulator.company()
    code = await emulator.authorize(realm)
    status, body = await emulator.token(
        {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI + "x"}
    )
    assert (status, body["error"]) == (400, "invalid_grant")
    code = await emulator.authorize(realm)
    await emulator.control("POST", "/clock", {"advance_seconds": 601})
    status, body = await emulator.token(
        {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    )
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_refresh_rotates_and_superseded_token_gets_invalid_grant(
    emulator: Emulator,
) -> None:
    realm = await emulator.company()
    tokens = await emulator.connect(realm)
    status, first = await emulator.token(
        {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
    )
    assert status == 200
    assert first["refresh_token"] != tokens.refresh_token
    status, stale = await emulator.token(
        {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
    )
    assert (status, stale["error"]) == (400, "invalid_grant")
    # The newest one still works, and counts show exactly what happened.
    status, _ = await emulator.token(
        {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    )
    assert status == 200
    stats = await emulator.control("GET", "/stats")
    assert stats["token_calls"] == {"authorization_code": 1, "refresh_token": 3}
    assert emulator.state.oauth.token_calls["refresh_token"] == 3
    # The access token from before the refreshes is still valid until it expires.
    status, _, _ = await emulator.api(tokens, f"companyinfo/{realm}")
    assert status == 200


async def test_hard_expiry_only_when_asked(emulator: Emulator) -> None:
    realm = await emulator.company()
    tokens = await emulator.connect(realm)
    status, body = await emulator.token(
        {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token},
        headers={"x-include-refresh-token-hard-expires-in": "true"},
    )
    assert status == 200
    assert 157_000_000 < body["x_refresh_token_hard_expires_in"] <= 1826 * 86_400


async def test_client_secret_post_and_bad_client(emulator: Emulator) -> None:
    realm = await emulator.company()
    code = await emulator.authorize(realm)
    async with emulator.http.post(
        f"{emulator.base}/oauth2/v1/tokens/bearer",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    ) as resp:
        assert resp.status == 200
    status, body = await emulator.token(
        {"grant_type": "refresh_token", "refresh_token": "x"}, auth=basic(CLIENT_ID, "wrong")
    )
    assert (status, body["error"]) == (401, "invalid_client")
    status, body = await emulator.token({"grant_type": "password"})
    assert (status, body["error"]) == (400, "unsupported_grant_type")


async def test_access_token_expires_with_401_3200(emulator: Emulator) -> None:
    realm = await emulator.company()
    tokens = await emulator.connect(realm)
    await emulator.control("POST", "/clock", {"advance_seconds": 3601})
    status, body, headers = await emulator.api(tokens, f"companyinfo/{realm}")
    assert status == 401
    assert headers["intuit_tid"]
    error = body["fault"]["error"][0]
    assert error["code"] == "3200"
    assert "AuthenticationFailed" in error["message"]
    assert "expired" in error["detail"]


async def test_revoke_ends_access_and_refresh(emulator: Emulator) -> None:
    realm = await emulator.company()
    tokens = await emulator.connect(realm)
    async with emulator.http.post(
        f"{emulator.base}/v2/oauth2/tokens/revoke",
        json={"token": tokens.refresh_token},
        headers={"Authorization": basic()},
    ) as resp:
        assert resp.status == 200
        assert await resp.read() == b""
    status, _, _ = await emulator.api(tokens, f"companyinfo/{realm}")
    assert status == 401
    status, body = await emulator.token(
        {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
    )
    assert (status, body["error"]) == (400, "invalid_grant")
    assert (await emulator.control("GET", "/stats"))["revoke_calls"] == 1


async def test_disconnect_from_intuit_side(emulator: Emulator) -> None:
    realm = await emulator.company()
    other = await emulator.company()
    tokens = await emulator.connect(realm)
    other_tokens = await emulator.connect(other)
    result = await emulator.control(
        "POST", f"/companies/{realm}/disconnect", {"client_id": CLIENT_ID}
    )
    assert len(result["revoked_grants"]) == 1
    status, body, _ = await emulator.api(tokens, "query", params={"query": "SELECT * FROM Invoice"})
    assert status == 401
    assert body["fault"]["error"][0]["code"] == "3200"
    status, refreshed = await emulator.token(
        {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
    )
    assert (status, refreshed["error"]) == (400, "invalid_grant")
    # The app's connection to the other company is untouched.
    status, _, _ = await emulator.api(other_tokens, f"companyinfo/{other}")
    assert status == 200


async def test_token_for_another_company_gets_403_3100(emulator: Emulator) -> None:
    realm = await emulator.company()
    other = await emulator.company()
    tokens = await emulator.connect(realm)
    async with emulator.http.get(
        f"{emulator.base}/v3/company/{other}/companyinfo/{other}",
        headers={"Authorization": f"Bearer {tokens.access_token}"},
    ) as resp:
        assert resp.status == 403
        body = await resp.json()
    assert body["fault"]["error"][0]["code"] == "3100"
    assert re.search(r"ApplicationAuthorizationFailed", body["fault"]["error"][0]["message"])

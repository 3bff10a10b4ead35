"""OAuth 2.0 pieces both identity servers share: the client's credentials, RFC 6749
errors, redirects back to the app, the error page, token-endpoint faults."""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Mapping
from html import escape
from typing import Any, Final

from aiohttp import web
from yarl import URL

from emulators.common.faults import FaultBox
from emulators.common.http import dumps, raw_json


class MalformedCredentials(ValueError):
    """An ``Authorization: Basic`` header that is not base64 ``id:secret``."""


def client_credentials(request: web.Request, form: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(client_id, client_secret)`` from HTTP Basic (``client_secret_basic``) or, failing
    that, the form (``client_secret_post``); None when neither is there."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise MalformedCredentials("Malformed Basic credentials") from exc
        client_id, sep, secret = decoded.partition(":")
        if not sep:
            raise MalformedCredentials("Malformed Basic credentials")
        return client_id, secret
    posted_id, posted_secret = form.get("client_id"), form.get("client_secret")
    if isinstance(posted_id, str) and isinstance(posted_secret, str):
        return posted_id, posted_secret
    return None


class OAuthError(Exception):
    """An RFC 6749 error response from a token or revocation endpoint."""

    def __init__(self, status: int, error: str, description: str = "") -> None:
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        out = {"error": self.error}
        if self.description:
            out["error_description"] = self.description
        return out


NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def redirect(redirect_uri: str, params: dict[str, str], state: str | None) -> web.HTTPFound:
    """Back to the app with ``params`` (and the ``state`` it sent, if any)."""
    if state is not None:
        params["state"] = state
    return web.HTTPFound(str(URL(redirect_uri).update_query(params)))


def required_field(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    if not isinstance(value, str) or not value:
        raise OAuthError(400, "invalid_request", f"{name} is required")
    return value


def error_page(title: str, heading: str, message: str) -> web.Response:
    """The page an authorization request that cannot be redirected back ends on; ``title``
    and ``heading`` are the emulator's own text, ``message`` is escaped."""
    html = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{title}</title></head><body><main>"
        f"<h1>{heading}</h1><p class='error'>{escape(message)}</p>"
        "</main></body></html>"
    )
    return web.Response(text=html, status=400, content_type="text/html")


async def token_faults(faults: FaultBox[Any]) -> web.Response | None:
    """Injected latency and errors for the token and revocation endpoints (fault scope
    ``"token"``)."""
    if not faults.applies("token", None):
        return None
    delay = faults.latency()
    if delay:
        await asyncio.sleep(delay)
    if faults.roll(faults.faults.error_rate):
        faults.count("token_error")
        body = {"error": "server_error", "error_description": "injected fault"}
        return raw_json(dumps(body), faults.faults.error_status, dict(NO_STORE))
    return None

"""OAuth 2.0 pieces both identity servers share: reading the client's credentials."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from aiohttp import web


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

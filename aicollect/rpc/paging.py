"""Opaque page tokens and page-size rules shared by every paginated RPC (AIP-158)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aicollect.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument("page_size must not be negative", field="page_size")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_token(position: dict[str, Any], filters: dict[str, Any]) -> str:
    """A token remembers where the page ended and the filters it was made for."""
    raw = json.dumps({"p": position, "f": filters}, sort_keys=True, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(token: str, filters: dict[str, Any]) -> dict[str, Any] | None:
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        position, made_for = data["p"], data["f"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise InvalidArgument("page_token is not valid", field="page_token") from None
    if not isinstance(position, dict) or made_for != json.loads(json.dumps(filters)):
        raise InvalidArgument(
            "page_token was made for other filters; repeat the first request", field="page_token"
        )
    return position

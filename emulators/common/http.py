"""JSON bodies as the providers send them: compact, UTF-8, ``application/json``."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

JSON = "application/json"


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def raw_json(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=body, status=status, content_type=JSON, charset="utf-8", headers=headers
    )

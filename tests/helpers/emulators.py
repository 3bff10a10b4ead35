"""What both emulators' tests share: a real server on 127.0.0.1:0 and the control API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer


@asynccontextmanager
async def served(app: web.Application) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    """``app`` listening on a free loopback port: (base URL, a client session)."""
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            yield str(server.make_url("")).rstrip("/"), http
    finally:
        await server.close()


@dataclass
class ControlClient:
    base: str
    http: aiohttp.ClientSession

    async def control(
        self, method: str, path: str, body: dict[str, Any] | None = None, expect: int | None = 200
    ) -> Any:
        """A call to ``/_emulator{path}``; checks the status unless ``expect`` is None."""
        async with self.http.request(method, f"{self.base}/_emulator{path}", json=body) as resp:
            data = await resp.json()
            if expect is not None:
                assert resp.status == expect, (resp.status, data)
            return data

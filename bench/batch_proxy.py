"""Intuit's ``/batch`` endpoint for the Singer tap, translated to the emulator's ``/query``.

The emulator serves only ``/query``; ``BatchProxy`` runs in the benchmark's own event loop
and turns each batch item into one emulator query (see ``docs/peers-benchmark.md``).
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web


@dataclass
class BatchProxy:
    """Intuit's ``POST /v3/company/{realm}/batch`` over the emulator's ``/query``.

    The emulator serves the QBO query API but not ``/batch``, which the Singer tap uses for
    every page. Each batch item becomes one emulator query (GET, the same statement); the
    item answers are spliced into ``{"BatchItemResponse": [{"bId": ..., <query answer>}]}``
    without re-parsing the page. Every other request is forwarded unchanged. The proxy
    logs each request the tool made, so the limiter window can be checked.
    """

    upstream: str
    requests: list[tuple[float, str, str, int]] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _http: aiohttp.ClientSession | None = None
    url: str = ""

    async def start(self) -> str:
        self._http = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_route("POST", "/v3/company/{realm}/batch", self._batch)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    def _log(self, request: web.Request, status: int) -> None:
        self.requests.append((time.monotonic(), request.method, request.path, status))

    @staticmethod
    def _headers(request: web.Request) -> dict[str, str]:
        keep = ("Authorization", "Accept", "Content-Type", "User-Agent")
        return {k: request.headers[k] for k in keep if k in request.headers}

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._http is not None
        async with self._http.request(
            request.method,
            f"{self.upstream}{request.path_qs}",
            headers=self._headers(request),
            data=await request.read() if request.can_read_body else None,
        ) as resp:
            body = await resp.read()
            self._log(request, resp.status)
            return web.Response(
                body=body,
                status=resp.status,
                headers={"Content-Type": resp.headers.get("Content-Type", "application/json")},
            )

    async def _batch(self, request: web.Request) -> web.StreamResponse:
        assert self._http is not None
        realm = request.match_info["realm"]
        try:
            items = (await request.json())["BatchItemRequest"]
        except (ValueError, KeyError, TypeError):
            self._log(request, 400)
            return web.json_response({"Fault": {"Error": [{"Message": "bad batch"}]}}, status=400)
        parts: list[bytes] = []
        headers = self._headers(request)
        headers.pop("Content-Type", None)
        for item in items:
            params = {"query": item.get("Query", "")}
            if "minorversion" in request.query:
                params["minorversion"] = request.query["minorversion"]
            async with self._http.get(
                f"{self.upstream}/v3/company/{realm}/query", params=params, headers=headers
            ) as resp:
                body = (await resp.read()).strip()
                if resp.status in (401, 403, 429) or resp.status >= 500:
                    # The whole batch fails the way the single request did.
                    self._log(request, resp.status)
                    return web.Response(
                        body=body, status=resp.status, content_type="application/json"
                    )
            bid = json.dumps(item.get("bId", "")).encode()
            if body.startswith(b"{") and body != b"{}":
                parts.append(b'{"bId":' + bid + b"," + body[1:])
            else:
                parts.append(b'{"bId":' + bid + b"}")
        self._log(request, 200)
        payload = b'{"BatchItemResponse":[' + b",".join(parts) + b"]}"
        return web.Response(body=payload, status=200, content_type="application/json")

    def window_peak(self, since: float, seconds: float = 60.0) -> int:
        """The most requests the tool made in any ``seconds`` window after ``since``."""
        times = [t for t, *_ in self.requests if t >= since]
        window: deque[float] = deque()
        peak = 0
        for t in times:
            window.append(t)
            while window and t - window[0] >= seconds:
                window.popleft()
            peak = max(peak, len(window))
        return peak

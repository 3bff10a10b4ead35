"""Xero's Accounting API and ``/connections`` over aiohttp: requests, Xero's error shapes,
its rate-limit headers and ``Xero-Correlation-Id``.

Transport and error shape only: who may call how often (the organisation's budget) and
with which token is decided by the integration service.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from aicollect.metrics import IntegrationMetrics

log = logging.getLogger(__name__)

ACCOUNTING_PATH = "/api.xro/2.0"
CORRELATION_HEADER = "Xero-Correlation-Id"


class XeroError(Exception):
    """Xero answered with an error (the message is Xero's, never a token)."""

    def __init__(
        self, message: str, *, status: int, code: str = "", trace_id: str | None = None
    ) -> None:
        super().__init__(f"{message} (HTTP {status}, {code or '-'}, correlation id {trace_id})")
        self.status = status
        self.code = code
        self.trace_id = trace_id


class XeroAuthError(XeroError):
    """401: the access token is expired, revoked or lacks a scope; a refresh may help."""


class XeroForbidden(XeroError):
    """403: the organisation is not connected to the token's user (disconnected in Xero)."""


class XeroThrottled(XeroError):
    """429. ``problem`` is ``X-Rate-Limit-Problem`` (minute, day, concurrent, appminute),
    ``retry_after_s`` Xero's Retry-After (a concurrency refusal has none: 1 s)."""

    def __init__(self, message: str, *, problem: str, retry_after_s: float, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.problem = problem
        self.retry_after_s = retry_after_s


class XeroNotFound(XeroError):
    """404: no such record in this organisation."""


class XeroUnavailable(XeroError):
    """5xx, a timeout or a network failure; retrying later may work."""


def _message(payload: Any, fallback: str) -> str:
    if isinstance(payload, dict):
        for key in ("Detail", "Message", "Title", "detail", "title"):
            value = payload.get(key)
            if isinstance(value, str) and value:
                return value[:300]
    return fallback


def classify(status: int, payload: Any, reason: str, headers: Mapping[str, str]) -> XeroError:
    trace = headers.get(CORRELATION_HEADER)
    message = _message(payload, reason or "request failed")
    kw: dict[str, Any] = {"status": status, "trace_id": trace}
    if status == 429:
        problem = (headers.get("X-Rate-Limit-Problem") or "").strip().lower()
        try:
            delay = float(headers.get("Retry-After") or (1.0 if problem == "concurrent" else 60.0))
        except ValueError:
            delay = 60.0
        return XeroThrottled(message, problem=problem, retry_after_s=delay, code=problem, **kw)
    if status == 401:
        return XeroAuthError(message, code="unauthorized", **kw)
    if status == 403:
        return XeroForbidden(message, code="forbidden", **kw)
    if status == 404:
        return XeroNotFound(message, code="not_found", **kw)
    if status >= 500 or status == 0:
        return XeroUnavailable(message, **kw)
    code = str(payload.get("Type") or "") if isinstance(payload, dict) else ""
    return XeroError(message, code=code, **kw)


class XeroApi:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        base_url: str,
        *,
        timeout_s: float = 30.0,
        metrics: IntegrationMetrics | None = None,
    ) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._metrics = metrics or IntegrationMetrics()

    async def _call(
        self,
        method: str,
        url: str,
        access_token: str,
        *,
        tenant_id: str | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        endpoint: str,
    ) -> Any:
        sent = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
        if tenant_id is not None:
            sent["xero-tenant-id"] = tenant_id
        sent.update(headers or {})
        started = time.perf_counter()
        status = "200"
        try:
            try:
                async with self._http.request(
                    method, url, params=params, headers=sent, timeout=self._timeout
                ) as resp:
                    if resp.status == 204:
                        return None
                    try:
                        payload: Any = await resp.json(content_type=None)
                    except ValueError:
                        payload = None  # Xero's 404 is plain text
                    if resp.status == 200:
                        return payload
                    error = classify(resp.status, payload, resp.reason or "", resp.headers)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise XeroUnavailable(f"Xero unreachable: {type(exc).__name__}", status=0) from None
            status = str(error.status)
            log.warning(
                "Xero API error",
                extra={"status": error.status, "xero_code": error.code, "trace_id": error.trace_id},
            )
            if isinstance(error, XeroThrottled):
                self._metrics.intuit_throttled.inc()
            raise error
        finally:
            self._metrics.intuit_requests.labels(endpoint, status).inc()
            self._metrics.intuit_latency.labels(endpoint).observe(time.perf_counter() - started)

    async def get(
        self,
        tenant_id: str,
        resource: str,
        access_token: str,
        *,
        params: Mapping[str, str] | None = None,
        modified_since: str | None = None,
    ) -> dict[str, Any]:
        """``GET /api.xro/2.0/{resource}`` for one organisation (``xero-tenant-id``).
        ``modified_since`` is sent as ``If-Modified-Since`` (``YYYY-MM-DDTHH:MM:SS``, UTC)."""
        headers = {"If-Modified-Since": modified_since} if modified_since else None
        payload = await self._call(
            "GET",
            f"{self._base}{ACCOUNTING_PATH}/{resource.lstrip('/')}",
            access_token,
            tenant_id=tenant_id,
            params=params,
            headers=headers,
            endpoint=f"xero:{resource.split('/', 1)[0].lower()}",
        )
        if not isinstance(payload, dict):
            raise XeroError("Xero answered without a JSON object", status=200)
        return payload

    async def connections(self, access_token: str, auth_event_id: str = "") -> list[dict[str, Any]]:
        """``GET /connections`` (the token user's organisations; those of one consent with
        ``auth_event_id``). Tenantless: only the app's minute limit applies."""
        params = {"authEventId": auth_event_id} if auth_event_id else None
        payload = await self._call(
            "GET",
            f"{self._base}/connections",
            access_token,
            params=params,
            endpoint="xero:connections",
        )
        if not isinstance(payload, list):
            raise XeroError("Xero's /connections answered without a list", status=200)
        return [c for c in payload if isinstance(c, dict)]

    async def delete_connection(self, connection_id: str, access_token: str) -> None:
        """``DELETE /connections/{id}``: disconnects one organisation; a 404 means it is
        already gone."""
        try:
            await self._call(
                "DELETE",
                f"{self._base}/connections/{connection_id}",
                access_token,
                endpoint="xero:connections",
            )
        except XeroNotFound:
            return

"""The QBO Accounting API v3 over aiohttp: requests, Intuit's Fault bodies, ``intuit_tid``.

This module is transport and error shape only; who may call how often (the per-realm
budget) and with which token is decided by the integration service.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import aiohttp

from aicollect import fastjson
from aicollect.metrics import IntegrationMetrics

log = logging.getLogger(__name__)

MINOR_VERSION = "75"


class QboError(Exception):
    """Intuit answered with an error (message is Intuit's, never a token)."""

    def __init__(
        self, message: str, *, status: int, code: str = "", intuit_tid: str | None = None
    ) -> None:
        super().__init__(f"{message} (HTTP {status}, code {code or '-'}, intuit_tid={intuit_tid})")
        self.status = status
        self.code = code
        self.intuit_tid = intuit_tid


class QboAuthError(QboError):
    """401 / 3200 (token expired, invalid or revoked), 403 / 3100, or 120: re-auth may help."""


class QboThrottled(QboError):
    """429 / 3001. ``retry_after_s`` is Intuit's Retry-After when sent, else its 60 s advice."""

    def __init__(self, message: str, *, retry_after_s: float, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after_s = retry_after_s


class QboNotFound(QboError):
    """400 / 610 Object Not Found (or 404): the entity is deleted or never existed."""


class QboUnavailable(QboError):
    """5xx, a timeout or a network failure; retrying later may work."""


def _fault(body: Any) -> tuple[str, str]:
    """(code, message) from a Fault body in either casing."""
    if not isinstance(body, dict):
        return "", ""
    fault = body.get("Fault") or body.get("fault") or {}
    errors = fault.get("Error") or fault.get("error") or []
    if not errors or not isinstance(errors, list) or not isinstance(errors[0], dict):
        return "", ""
    first = errors[0]
    code = str(first.get("code") or first.get("Code") or "")
    message = str(first.get("Message") or first.get("message") or "")
    detail = first.get("Detail") or first.get("detail")
    return code, f"{message}: {detail}" if detail else message


class QboApi:
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

    def url(self, realm_id: str, path: str) -> str:
        return f"{self._base}/v3/company/{realm_id}/{path.lstrip('/')}"

    async def request(
        self,
        method: str,
        realm_id: str,
        path: str,
        access_token: str,
        *,
        params: dict[str, str] | None = None,
        body: str | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        endpoint = path.split("/", 1)[0].split("?", 1)[0].lower()
        started = time.perf_counter()
        status = "200"
        try:
            return await self._request(
                method, realm_id, path, access_token, params, body, content_type
            )
        except QboError as exc:
            status = str(exc.status)
            if isinstance(exc, QboThrottled):
                self._metrics.intuit_throttled.inc()
            raise
        finally:
            self._metrics.intuit_requests.labels(endpoint, status).inc()
            self._metrics.intuit_latency.labels(endpoint).observe(time.perf_counter() - started)

    async def _request(
        self,
        method: str,
        realm_id: str,
        path: str,
        access_token: str,
        params: dict[str, str] | None,
        body: str | None,
        content_type: str | None,
    ) -> dict[str, Any]:
        query = {"minorversion": MINOR_VERSION, **(params or {})}
        headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            async with self._http.request(
                method,
                self.url(realm_id, path),
                params=query,
                data=body,
                headers=headers,
                timeout=self._timeout,
            ) as resp:
                tid = resp.headers.get("intuit_tid")
                payload: Any = None
                raw = await resp.read()
                if raw.strip():  # an empty body is no payload (aiohttp's resp.json too)
                    with contextlib.suppress(ValueError):  # e.g. an XML throttle page
                        payload = fastjson.loads(raw)
                if (
                    resp.status == 200
                    and isinstance(payload, dict)
                    and not ("Fault" in payload or "fault" in payload)
                ):
                    return payload
                code, message = _fault(payload)
                raise _classify(resp.status, code, message or resp.reason or "", tid, resp.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise QboUnavailable(f"QBO unreachable: {type(exc).__name__}", status=0) from None

    async def company_info(self, realm_id: str, access_token: str) -> dict[str, Any]:
        payload = await self.request("GET", realm_id, f"companyinfo/{realm_id}", access_token)
        info = payload.get("CompanyInfo")
        return info if isinstance(info, dict) else {}


def _classify(status: int, code: str, message: str, tid: str | None, headers: Any) -> QboError:
    kwargs: dict[str, Any] = {"status": status, "code": code, "intuit_tid": tid}
    log.warning("QBO API error", extra={"status": status, "qbo_code": code, "intuit_tid": tid})
    if status == 429 or code == "3001":
        retry_after = headers.get("Retry-After")
        try:
            delay = float(retry_after) if retry_after else 60.0
        except ValueError:
            delay = 60.0
        return QboThrottled(message or "ThrottleExceeded", retry_after_s=delay, **kwargs)
    if status in (401, 403) or code in ("3200", "3100", "120"):
        return QboAuthError(message or "AuthenticationFailed", **kwargs)
    if status == 404 or code == "610":
        return QboNotFound(message or "Object Not Found", **kwargs)
    if status >= 500 or status == 0:
        return QboUnavailable(message or "service unavailable", **kwargs)
    return QboError(message or "request failed", **kwargs)

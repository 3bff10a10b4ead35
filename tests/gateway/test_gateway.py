"""Gateway: liveness, readiness tied to the gRPC backends, Prometheus metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from aicollect.rpc.client import internal_channel
from aicollect.settings import Settings
from gateway.app import create_app
from gateway.keys import Backends
from tests.conftest import INTERNAL_TOKEN


def _settings() -> Settings:
    return Settings.from_env({"AICOLLECT_INTERNAL_TOKEN": INTERNAL_TOKEN})


@pytest_asyncio.fixture
async def gateway(integration_addr: str, matcher_addr: str) -> AsyncIterator[TestClient[Any, Any]]:
    backends = Backends(
        integration=internal_channel(integration_addr, INTERNAL_TOKEN),
        matcher=internal_channel(matcher_addr, INTERNAL_TOKEN),
    )
    async with TestClient(TestServer(create_app(_settings(), backends=backends))) as client:
        yield client
    await backends.integration.close(None)
    await backends.matcher.close(None)


async def test_healthz_and_readyz(gateway: TestClient[Any, Any]) -> None:
    resp = await gateway.get("/healthz")
    assert resp.status == 200
    assert resp.headers["X-Request-Id"]
    resp = await gateway.get("/readyz")
    assert resp.status == 200
    assert await resp.json() == {"ready": True, "integration": "SERVING", "matcher": "SERVING"}


async def test_not_ready_when_a_backend_is_down(integration_addr: str, refused_addr: str) -> None:
    backends = Backends(
        integration=internal_channel(integration_addr, INTERNAL_TOKEN),
        matcher=internal_channel(refused_addr, INTERNAL_TOKEN),
    )
    async with TestClient(TestServer(create_app(_settings(), backends=backends))) as client:
        resp = await client.get("/readyz")
        body = await resp.json()
    await backends.integration.close(None)
    await backends.matcher.close(None)
    assert resp.status == 503
    assert body["ready"] is False
    assert body["integration"] == "SERVING"
    assert body["matcher"] == "UNAVAILABLE"


async def test_metrics_in_prometheus_format(gateway: TestClient[Any, Any]) -> None:
    await gateway.get("/healthz")
    await gateway.get("/no-such-route")
    resp = await gateway.get("/metrics")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    text = await resp.text()
    assert 'aicollect_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    assert 'status="404"' in text
    assert "aicollect_http_request_seconds_bucket" in text


async def test_request_id_is_echoed(gateway: TestClient[Any, Any]) -> None:
    resp = await gateway.get("/healthz", headers={"X-Request-Id": "abc123"})
    assert resp.headers["X-Request-Id"] == "abc123"

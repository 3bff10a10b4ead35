"""Slow clients (slowloris): a request that does not fully arrive within the configured time
of its first byte loses its connection, while everyone else is served."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio

from tests.helpers.webhooks import cloud_events, sign
from tests.stack import gateway_only

LIMIT_S = 1.0
DRIBBLE_EVERY_S = 0.2
SLACK_S = 2.0  # scheduling noise on a busy machine


@pytest_asyncio.fixture
async def gateway(integration_addr: str, matcher_addr: str) -> AsyncIterator[str]:
    async with gateway_only(
        integration_addr, matcher_addr, AICOLLECT_GATEWAY_READ_TIMEOUT_SECONDS=str(LIMIT_S)
    ) as url:
        yield url


async def _dribble(url: str, head: bytes, dribble: bytes) -> tuple[float, bytes]:
    """Sends ``head`` at once, then ``dribble`` one byte every 0.2 s. Returns how long after
    the first byte the gateway dropped the connection, and what it answered before."""
    port = int(url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()

    async def send() -> None:
        try:
            writer.write(head)
            for byte in dribble:
                await asyncio.sleep(DRIBBLE_EVERY_S)
                writer.write(bytes([byte]))
                await writer.drain()
        except ConnectionError:
            pass

    sender = asyncio.create_task(send())
    try:
        answer = await asyncio.wait_for(reader.read(), timeout=LIMIT_S + 10)
    except ConnectionError:
        answer = b""
    elapsed = time.monotonic() - started
    sender.cancel()
    writer.close()
    return elapsed, answer


async def test_slow_headers_and_slow_bodies_are_cut_off_while_others_are_served(
    gateway: str,
) -> None:
    headers = b"POST /v1/webhooks/qbo HTTP/1.1\r\nHost: gateway\r\n"
    slow_headers = _dribble(gateway, headers, b"X-Slow: " + b"a" * 100 + b"\r\n\r\n")
    slow_body = _dribble(
        gateway,
        headers + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n",
        b"[" + b" " * 98 + b"]",
    )

    async def normal_requests() -> list[int]:
        await asyncio.sleep(LIMIT_S / 2)  # while both slow clients hold their connections
        body = cloud_events(("Payment", "101", "created"))
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{gateway}/readyz") as resp:
                ready = resp.status
            async with http.post(
                f"{gateway}/v1/webhooks/qbo",
                data=body,
                headers={"intuit-signature": sign(body), "Content-Type": "application/json"},
            ) as resp:
                webhook = resp.status
        return [ready, webhook]

    (headers_cut, headers_answer), (body_cut, _), served = await asyncio.gather(
        slow_headers, slow_body, normal_requests()
    )
    # Each slow client was dropped once the limit passed, long before it finished sending
    # (the header dribble alone needs 22 s).
    assert LIMIT_S - 0.1 <= headers_cut <= LIMIT_S + SLACK_S
    assert LIMIT_S - 0.1 <= body_cut <= LIMIT_S + SLACK_S
    assert headers_answer == b""  # no partial request reached a handler
    assert served == [200, 200]
    async with aiohttp.ClientSession() as http, http.get(f"{gateway}/metrics") as resp:
        metrics = await resp.text()
    # The body that never arrived is counted as a 408 of the webhook route, not a 500.
    assert 'route="/v1/webhooks/qbo",status="408"' in metrics
    assert 'status="500"' not in metrics


async def test_a_client_that_sends_in_time_is_served_even_in_pieces(gateway: str) -> None:
    body = cloud_events(("Payment", "102", "created"))
    head = (
        b"POST /v1/webhooks/qbo HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\n"
        + f"intuit-signature: {sign(body)}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    )
    port = int(gateway.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for piece in (head[:20], head[20:], body[:10], body[10:]):  # four pieces within the limit
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(LIMIT_S / 5)
    answer = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 ")


async def test_an_idle_keep_alive_connection_outlives_the_read_limit(gateway: str) -> None:
    """The limit is for reading a request, not for keep-alive: a load balancer's pooled
    connection that idles longer than the limit is still served."""
    port = int(gateway.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n"
    answers = []
    for _ in range(2):
        writer.write(request)
        await writer.drain()
        status = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        length = next(
            int(line.split(b":")[1])
            for line in status.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        answers.append(status.split(b"\r\n")[0])
        await asyncio.sleep(LIMIT_S * 2)  # idle, on the same connection
    writer.close()
    assert answers == [b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK"]

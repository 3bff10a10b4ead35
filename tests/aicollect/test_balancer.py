"""The round-robin balancer in front of gateway replicas (aicollect/balancer.py): each
request to the next backend even over one kept-alive connection (as Intuit sends
webhooks), a refusing backend skipped, a backend failing mid-request answered 502 (so the
sender retries), bodies, status codes and repeated headers passed through."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from aicollect.balancer import create_app
from tests.helpers.ports import refused_address


async def _backend(name: str) -> TestServer:
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        response = web.Response(status=201, body=name.encode() + b":" + body)
        response.headers.add("Set-Cookie", "a=1")
        response.headers.add("Set-Cookie", "b=2")
        response.headers["X-Host-Seen"] = request.host
        return response

    async def die(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.close()  # the connection drops with the request in flight
        raise web.HTTPInternalServerError

    app = web.Application()
    app.router.add_post("/v1/webhooks/qbo", echo)
    app.router.add_post("/die", die)
    server = TestServer(app)
    await server.start_server()
    return server


Serve = Callable[[list[str]], Awaitable[str]]


@pytest_asyncio.fixture
async def serve() -> AsyncIterator[Serve]:
    started: list[TestServer] = []

    async def start(backends: list[str]) -> str:
        server = TestServer(create_app(backends))
        await server.start_server()
        started.append(server)
        return str(server.make_url("")).rstrip("/")

    yield start
    for server in started:
        await server.close()


async def test_each_request_goes_to_the_next_backend_over_one_connection(serve: Serve) -> None:
    one, two = await _backend("one"), await _backend("two")
    try:
        url = await serve([str(one.make_url("")).rstrip("/"), str(two.make_url("")).rstrip("/")])
        seen = []
        async with aiohttp.ClientSession() as http:  # one kept-alive connection
            for i in range(4):
                async with http.post(f"{url}/v1/webhooks/qbo", data=f"e{i}") as resp:
                    assert resp.status == 201
                    assert resp.headers.getall("Set-Cookie") == ["a=1", "b=2"]
                    assert resp.headers["X-Host-Seen"] == url.removeprefix("http://")
                    seen.append(await resp.text())
        assert seen == ["one:e0", "two:e1", "one:e2", "two:e3"]
    finally:
        await one.close()
        await two.close()


async def test_a_refusing_backend_is_skipped(serve: Serve) -> None:
    alive = await _backend("alive")
    try:
        with refused_address() as dead:
            url = await serve([f"http://{dead}", str(alive.make_url("")).rstrip("/")])
            async with aiohttp.ClientSession() as http:
                for i in range(3):
                    async with http.post(f"{url}/v1/webhooks/qbo", data=f"e{i}") as resp:
                        assert resp.status == 201
                        assert await resp.text() == f"alive:e{i}"
    finally:
        await alive.close()


async def test_none_reachable_or_failing_mid_request_is_502(serve: Serve) -> None:
    failing = await _backend("failing")
    try:
        with refused_address() as dead:
            url = await serve([f"http://{dead}"])
            async with aiohttp.ClientSession() as http, http.post(f"{url}/x", data=b"") as resp:
                assert resp.status == 502
        url = await serve([str(failing.make_url("")).rstrip("/")])
        async with aiohttp.ClientSession() as http, http.post(f"{url}/die", data=b"e") as resp:
            assert resp.status == 502  # not known to be stored: the sender must retry
    finally:
        await failing.close()

"""Waiting for a confirmation of placement candidates to be carried out, in tests.

A test that expects the placements waits through the reference client
(``examples/confirming.py``), reading the same listing the dashboard reads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from examples import confirming

Call = Callable[..., Awaitable[tuple[int, dict[str, Any]]]]


async def until_confirmed(
    call: Call, reply: dict[str, Any], *, within: float = 120.0
) -> dict[str, Any]:
    """The confirmation of ``reply`` once it is no longer confirming; ``call(method, path)``
    is a JSON call under the provider's base path."""

    async def page() -> dict[str, Any]:
        code, body = await call("GET", "/candidates", page_size="1")
        assert code == 200, body
        return body

    return await confirming.until_confirmed(page, reply, within=within)

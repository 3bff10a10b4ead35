"""Waiting for a confirmation of placement candidates to be carried out.

``POST /v1/integrations/{provider}/candidates/confirm`` records the confirmation and
answers at once; a large one is still ``CONFIRMATION_STATE_CONFIRMING`` then and the
integration workers place it in the background. A test that expects the placements
waits here, through the same listing the dashboard reads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

CONFIRMING = "CONFIRMATION_STATE_CONFIRMING"
CONFIRMED = "CONFIRMATION_STATE_CONFIRMED"

Call = Callable[..., Awaitable[tuple[int, dict[str, Any]]]]


async def until_confirmed(
    call: Call, reply: dict[str, Any], *, within: float = 120.0
) -> dict[str, Any]:
    """The confirmation of ``reply`` (a confirm route's answer) once it is no longer
    confirming; ``call(method, path)`` is a JSON call under the provider's base path."""
    confirmation: dict[str, Any] = reply["confirmation"]
    deadline = time.monotonic() + within
    while confirmation["state"] == CONFIRMING:
        assert time.monotonic() < deadline, f"the confirmation is still placing: {confirmation}"
        await asyncio.sleep(0.2)
        code, page = await call("GET", "/candidates", page_size="1")
        assert code == 200, page
        confirmation = page["confirmation"]
        assert confirmation["confirmation_id"] == reply["confirmation"]["confirmation_id"]
    return confirmation

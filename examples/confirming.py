"""A reference client of the candidate confirmation, for the dashboard's backend to copy.

``POST /v1/integrations/{provider}/candidates/confirm`` records the creditor's confirmation
and answers at once. A small one is placed before the answer (``CONFIRMATION_STATE_
CONFIRMED``); a large one answers ``CONFIRMATION_STATE_CONFIRMING`` and the integration's
workers place it in the background, surviving a restart. The client then follows it
through the candidates listing the dashboard reads anyway (``GET .../candidates``, whose
``confirmation`` field is the tenant's latest), until it is no longer confirming.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

CONFIRMING = "CONFIRMATION_STATE_CONFIRMING"
CONFIRMED = "CONFIRMATION_STATE_CONFIRMED"

# One page of ``GET /v1/integrations/{provider}/candidates?page_size=1``, as JSON.
CandidatesPage = Callable[[], Awaitable[dict[str, Any]]]


class StillPlacing(TimeoutError):
    """The confirmation was still being placed when the caller stopped waiting."""


async def until_confirmed(
    page: CandidatesPage,
    reply: dict[str, Any],
    *,
    within: float = 120.0,
    every: float = 0.2,
) -> dict[str, Any]:
    """The confirmation of ``reply`` (the confirm route's answer) once it is no longer
    confirming: ``CONFIRMED``, or the state it failed in. Raises :class:`StillPlacing`
    after ``within`` seconds, and ``RuntimeError`` if another confirmation replaced it."""
    confirmation: dict[str, Any] = reply["confirmation"]
    wanted = confirmation["confirmation_id"]
    deadline = time.monotonic() + within
    while confirmation["state"] == CONFIRMING:
        if time.monotonic() > deadline:
            raise StillPlacing(f"the confirmation is still placing: {confirmation}")
        await asyncio.sleep(every)
        confirmation = (await page())["confirmation"]
        if confirmation["confirmation_id"] != wanted:
            raise RuntimeError(f"confirmation {wanted} was replaced by {confirmation}")
    return confirmation

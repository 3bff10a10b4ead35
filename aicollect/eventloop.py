"""One way every process runs its event loop: uvloop (libuv) instead of asyncio's default.

uvloop's loop does the same work with markedly less CPU per socket operation, and every
process here (gateway, integration, matcher) is mostly sockets: HTTP, gRPC, PostgreSQL.
grpc.aio, aiohttp and asyncpg all run on it. ``AICOLLECT_EVENT_LOOP=asyncio`` falls back
to the standard loop (for a comparison, or a debugging session that needs it).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import uvloop

_T = TypeVar("_T")

LOOP_ENV = "AICOLLECT_EVENT_LOOP"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop, unless the environment asks for asyncio's own."""
    if os.environ.get(LOOP_ENV, "uvloop").strip().lower() == "asyncio":
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run`` on the process's loop (uvloop by default)."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)

"""grpcurl against the in-process matcher, as support runs it from the docs."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from tests.conftest import INTERNAL_TOKEN


async def grpcurl(addr: str, method: str, body: dict[str, object]) -> Any:
    """Calls ``aicollect.matching.v1.MatchingService/<method>``; the reply as JSON."""
    binary = Path(sys.executable).parent / "grpcurl"
    process = await asyncio.create_subprocess_exec(
        str(binary),
        "-plaintext",
        "-H",
        f"authorization: Bearer {INTERNAL_TOKEN}",
        "-d",
        json.dumps(body),
        addr,
        f"aicollect.matching.v1.MatchingService/{method}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return json.loads(out)

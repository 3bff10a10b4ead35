"""grpcurl against the matcher (in process, or `aicollect run`'s), as support runs it from
the docs."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from tests.conftest import INTERNAL_TOKEN


async def grpcurl(
    addr: str, method: str, body: dict[str, object], *, token: str = INTERNAL_TOKEN
) -> Any:
    """Calls ``aicollect.matching.v1.MatchingService/<method>`` with the internal ``token``;
    the reply as JSON."""
    binary = Path(sys.executable).parent / "grpcurl"
    process = await asyncio.create_subprocess_exec(
        str(binary),
        "-plaintext",
        "-H",
        f"authorization: Bearer {token}",
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

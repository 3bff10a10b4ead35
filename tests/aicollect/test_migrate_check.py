"""``aicollect migrate --check``: what a deployment's init container runs before a process
starts, so a new release never serves on a schema that lacks its migrations."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator

import pytest_asyncio

from aicollect.db.migrate import upgrade_async
from tests.conftest import _admin, _with_database


@pytest_asyncio.fixture
async def empty_database(pg_server_url: str) -> AsyncIterator[str]:
    name = f"aicollect_empty_{uuid.uuid4().hex[:12]}"
    await _admin(pg_server_url, f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(pg_server_url, name)
    finally:
        await _admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _check(database_url: str) -> tuple[int, str]:
    env = {**os.environ, "AICOLLECT_DATABASE_URL": database_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aicollect.cli",
        "migrate",
        "--check",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_check_fails_until_migrated_and_changes_nothing(empty_database: str) -> None:
    code, out = await _check(empty_database)
    assert code == 3, out
    assert "lacks" in out
    code, _ = await _check(empty_database)  # still behind: the check migrated nothing
    assert code == 3

    await upgrade_async(empty_database, "i003")  # one branch part-way: still behind
    code, out = await _check(empty_database)
    assert code == 3, out

    await upgrade_async(empty_database)
    code, out = await _check(empty_database)
    assert code == 0, out
    assert "current" in out

"""The reference outreach consumer (examples/outreach_consumer.py), run as its own process
against the real matcher: it resumes from its saved cursor after a crash, handles every
event exactly once, and stops with the cursor untouched when the matcher refuses it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import BinaryIO

from tests.conftest import INTERNAL_TOKEN
from tests.helpers.paths import REPO_ROOT as ROOT
from tests.services.matcher.conftest import Matcher, placement_input, qbo_payment


def _start(matcher_addr: str, tmp: Path, tenant: str) -> subprocess.Popen[bytes]:
    with (tmp / "consumer.log").open("ab") as log:  # the child keeps its own copy
        return _popen(matcher_addr, tmp, tenant, log)


def _popen(matcher_addr: str, tmp: Path, tenant: str, log: BinaryIO) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "examples.outreach_consumer",
            "--matcher",
            matcher_addr,
            "--cursor-file",
            str(tmp / "cursor"),
            "--output",
            str(tmp / "events.jsonl"),
            "--tenant",
            tenant,
        ],
        cwd=ROOT,
        env={**os.environ, "AICOLLECT_INTERNAL_TOKEN": INTERNAL_TOKEN},
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _lines(tmp: Path) -> list[dict[str, object]]:
    path = tmp / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def _until_lines(tmp: Path, count: int, within: float = 20.0) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    for _ in range(int(within / 0.05)):
        found = _lines(tmp)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    log = (tmp / "consumer.log").read_text()
    raise AssertionError(f"{count} events not handled within {within} s: {found}\n{log}")


async def test_resumes_after_a_crash_and_handles_each_event_once(
    matcher: Matcher, matcher_addr: str, tmp_path: Path
) -> None:
    tenant = f"consumer-{uuid.uuid4().hex[:8]}"
    placements = await matcher.place(
        placement_input("c1", 10_000), placement_input("c2", 20_000), tenant=tenant
    )
    await matcher.pay(qbo_payment("p1", [("c1", 4_000)]), tenant=tenant)
    await matcher.pay(qbo_payment("p2", [("c2", 20_000)]), tenant=tenant)
    consumer = _start(matcher_addr, tmp_path, tenant)
    try:
        first = await _until_lines(tmp_path, 2)
        consumer.send_signal(signal.SIGKILL)  # a crash: no chance to clean up
        await asyncio.to_thread(consumer.wait, 10)
        saved = (tmp_path / "cursor").read_text()
        assert saved  # the cursor of the last handled event

        # While it is down, the debtor of c1 pays the rest: the stop must reach outreach.
        await matcher.pay(qbo_payment("p3", [("c1", 6_000)]), tenant=tenant)
        consumer = _start(matcher_addr, tmp_path, tenant)
        events = await _until_lines(tmp_path, 3)
        await asyncio.sleep(0.5)  # nothing else arrives (no replay from the beginning)
        events = _lines(tmp_path)
    finally:
        consumer.terminate()
        assert await asyncio.to_thread(consumer.wait, 10) == 0  # SIGTERM stops it cleanly

    assert events[:2] == first
    assert [e["type"] for e in events] == [
        "OUTREACH_EVENT_TYPE_BALANCE_CHANGED",
        "OUTREACH_EVENT_TYPE_STOP",
        "OUTREACH_EVENT_TYPE_STOP",
    ]
    assert len({e["event_id"] for e in events}) == 3
    assert [e["placement_id"] for e in events] == [
        placements[0].placement_id,
        placements[1].placement_id,
        placements[0].placement_id,
    ]
    assert (tmp_path / "cursor").read_text() != saved


async def test_a_refused_cursor_stops_it_and_leaves_the_cursor_alone(
    matcher_addr: str, tmp_path: Path
) -> None:
    (tmp_path / "cursor").write_text("not-a-cursor")
    consumer = _start(matcher_addr, tmp_path, "anyone")
    assert await asyncio.to_thread(consumer.wait, 30) == 3
    assert "CURSOR_INVALID" in (tmp_path / "consumer.log").read_text()
    assert (tmp_path / "cursor").read_text() == "not-a-cursor"
    assert _lines(tmp_path) == []

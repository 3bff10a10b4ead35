"""The peers of the extractor benchmarks and their own virtual environments.

Each open-source peer (Singer tap, Airbyte connector) is described by a ``Peer`` and
installed on first use into ``bench/.venvs/<name>/``, never into the project's venv.
Also the small pieces every peer benchmark shares: ``PeerFailed`` (a peer that could
not be installed or run, with the message to print and record), ``log``, ``tail`` and
``run_cmd`` (a subprocess with a time limit whose failure is a ``PeerFailed``).
Used by ``bench/peers.py`` (QBO) and ``bench/xero_peers.py`` (Xero).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
WRAPPER = BENCH / "peers" / "peer_run.py"
VENVS = BENCH / ".venvs"


@dataclass(frozen=True)
class Peer:
    key: str
    title: str
    requirement: str
    wrapper: str
    report_versions: tuple[str, ...]
    python_range: tuple[tuple[int, int], tuple[int, int]] | None = None
    # The interpreter its venv is built from (default: the one running the benchmark).
    interpreter: str | None = None


class PeerFailed(Exception):
    """A peer could not be installed or run; the message is what to print and record."""


class PeerFailedWith(PeerFailed):
    """A run that started and measured something but did not succeed."""

    def __init__(self, message: str, partial: dict[str, Any]) -> None:
        super().__init__(message)
        self.partial = partial


def log(message: str) -> None:
    print(message, flush=True)


def tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


async def run_cmd(argv: list[str], *, time_limit: float) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), time_limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise PeerFailed(f"`{' '.join(argv)}` did not finish in {time_limit:.0f} s") from None
    text = out.decode(errors="replace")
    # This machine's pip config names local index folders that may be absent: noise only.
    text = "\n".join(x for x in text.splitlines() if not x.startswith("WARNING: Location "))
    if proc.returncode != 0:
        raise PeerFailed(f"`{' '.join(argv)}` exited {proc.returncode}:\n{tail(text)}")
    return text


async def ensure_venv(peer: Peer) -> tuple[Path, dict[str, str], float | None]:
    """The peer's own venv, created and installed on first use: (python, versions, seconds)."""
    if peer.python_range is not None:
        low, high = peer.python_range
        if not low <= sys.version_info[:2] < high:
            raise PeerFailed(
                f"{peer.requirement} needs Python >={low[0]}.{low[1]},<{high[0]}.{high[1]}; "
                f"this is {sys.version.split()[0]}"
            )
    venv = VENVS / peer.key
    python = venv / "bin" / "python"
    marker = venv / ".bench-installed"
    installed_in: float | None = None
    if not (python.exists() and marker.exists() and marker.read_text() == peer.requirement):
        log(f"  installing {peer.requirement} into {venv.relative_to(ROOT)} (first use) ...")
        started = time.perf_counter()
        VENVS.mkdir(parents=True, exist_ok=True)
        interpreter = peer.interpreter or sys.executable
        await run_cmd([interpreter, "-m", "venv", "--clear", str(venv)], time_limit=300)
        await run_cmd(
            [
                str(python),
                *("-m", "pip", "install", "--quiet", "--disable-pip-version-check"),
                *peer.requirement.split(),  # a pin, plus any missing dependency
            ],
            time_limit=900,
        )
        marker.write_text(peer.requirement)
        installed_in = round(time.perf_counter() - started, 1)
        log(f"  installed in {installed_in} s")
    listing = await run_cmd([str(python), "-m", "pip", "list", "--format=json"], time_limit=120)
    start = listing.find("[")
    packages = {p["name"].lower(): p["version"] for p in json.loads(listing[start:])}
    versions = {name: packages.get(name, "?") for name in peer.report_versions}
    return python, versions, installed_in

"""Measuring one wrapped peer process and checking what it emitted.

``run_wrapped`` runs ``bench/peers/peer_run.py`` with the peer venv's python, stdout and
stderr to files, and measures wall time, peak RSS (``getrusage`` written by the wrapper,
cross-checked by polling ``VmHWM``) and CPU. ``read_messages`` reads the Singer or
Airbyte JSON lines, ``check_records`` checks every invoice id appears exactly once and
``figures`` turns a run into the reported columns. Shared by the QBO and Xero peers.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.peer_venvs import WRAPPER, Peer, PeerFailed, tail


@dataclass
class ProcessRun:
    seconds: float
    returncode: int
    peak_rss_mb: float
    stats: dict[str, Any]
    stderr_tail: str
    spawn_epoch: float


def proc_cpu_seconds(pid: int) -> float:
    """User+system CPU time so far of a live process (Linux /proc)."""
    with suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def vm_hwm_mb(pid: int) -> float:
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def run_wrapped(
    python: Path,
    peer: Peer,
    *,
    base_url: str,
    token_url: str,
    peer_args: list[str],
    workdir: Path,
    label: str,
    time_limit: float,
) -> ProcessRun:
    """Runs the peer's wrapper in its venv: stdout to ``<label>.out``, stderr to ``.err``."""
    stats_file = workdir / f"{label}.stats.json"
    out_path, err_path = workdir / f"{label}.out", workdir / f"{label}.err"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(workdir)),
        "LANG": "C.UTF-8",
        "OAUTHLIB_INSECURE_TRANSPORT": "1",  # requests-oauthlib refuses http:// otherwise
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    argv = [
        str(python),
        str(WRAPPER),
        peer.wrapper,
        *("--base-url", base_url, "--token-url", token_url, "--stats", str(stats_file)),
        "--",
        *peer_args,
    ]
    with out_path.open("wb") as out, err_path.open("wb") as err:
        spawn_epoch = time.time()
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=out, stderr=err, cwd=workdir, env=env
        )
        peak = 0.0

        async def poll() -> None:
            nonlocal peak
            while True:
                peak = max(peak, vm_hwm_mb(proc.pid))
                await asyncio.sleep(0.2)

        poller = asyncio.create_task(poll())
        try:
            await asyncio.wait_for(proc.wait(), time_limit)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise PeerFailed(
                f"{peer.key} {label} did not finish within {time_limit:.0f} s (killed); "
                f"stderr:\n{tail(err_path.read_text(errors='replace'))}"
            ) from None
        finally:
            poller.cancel()
            with suppress(asyncio.CancelledError):
                await poller
        seconds = time.perf_counter() - started
    stats: dict[str, Any] = {}
    if stats_file.exists():
        stats = json.loads(stats_file.read_text())
    peak = max(peak, float(stats.get("max_rss_mb", 0.0)))
    return ProcessRun(
        seconds=seconds,
        returncode=proc.returncode if proc.returncode is not None else -1,
        peak_rss_mb=round(peak, 1),
        stats=stats,
        stderr_tail=tail(err_path.read_text(errors="replace")),
        spawn_epoch=spawn_epoch,
    )


def read_messages(path: Path) -> Iterator[dict[str, Any]]:
    """JSON lines of a Singer or Airbyte stdout (other lines skipped)."""
    with path.open("rb") as lines:
        for line in lines:
            if line.startswith(b"{"):
                with suppress(ValueError):
                    yield json.loads(line)


def check_records(ids: list[str], expected: int) -> dict[str, Any]:
    distinct = len(set(ids))
    return {
        "records": len(ids),
        "distinct_invoice_ids": distinct,
        "duplicates": len(ids) - distinct,
        "all_invoices_exactly_once": len(ids) == distinct == expected,
    }


def figures(run: ProcessRun, calls: dict[str, int], records: int) -> dict[str, Any]:
    ready = run.stats.get("ready_epoch")
    startup = round(ready - run.spawn_epoch, 3) if isinstance(ready, float) else None
    exit_epoch = run.stats.get("exit_epoch")
    after_startup = (
        round(exit_epoch - ready, 3)
        if isinstance(ready, float) and isinstance(exit_epoch, float)
        else None
    )
    return {
        "seconds": round(run.seconds, 3),
        "startup_seconds": startup,
        "seconds_after_startup": after_startup,
        "qbo_api_calls": calls["api"],
        "token_calls": calls["token"],
        "throttled_429": calls["throttled_429"],
        "peak_rss_mb": run.peak_rss_mb,
        "cpu_seconds": round(
            float(run.stats.get("cpu_user_s", 0.0)) + float(run.stats.get("cpu_system_s", 0.0)), 2
        ),
        "records_per_second": round(records / run.seconds, 1) if run.seconds else None,
        "returncode": run.returncode,
    }

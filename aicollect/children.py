"""The local stack's child processes: start one (with its own environment), learn the ports
it bound, stop it with a grace period; and the two waits the stack needs while starting and
running them (readiness over HTTP, the first child to exit).

Used by ``aicollect/localstack.py`` (``aicollect run``, the tests, the benchmarks).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from aicollect.handshake import PORTS_FILE_ENV, read_ports

log = logging.getLogger("aicollect.run")


class StartFailed(Exception):
    """A child exited, or did not report its ports, during start-up."""


@dataclass
class Child:
    name: str
    argv: list[str]
    # Added to the stack's environment for this child only. Secrets go here or in the
    # environment, never in argv: a command line is visible to every user (ps).
    extra_env: dict[str, str] = field(default_factory=dict)
    ports_file: Path | None = None
    pass_fds: tuple[int, ...] = ()
    proc: asyncio.subprocess.Process | None = None
    stopping: bool = field(default=False)
    env: dict[str, str] = field(default_factory=dict, repr=False)

    async def start(self, env: dict[str, str] | None = None) -> None:
        """Starts the process; a restart (no ``env``) reuses the first start's environment,
        so it binds the same addresses the other processes were given."""
        if env is not None:
            self.env = env | self.extra_env
            if self.ports_file is not None:
                self.env[PORTS_FILE_ENV] = str(self.ports_file)
        if self.ports_file is not None:
            self.ports_file.unlink(missing_ok=True)
        self.stopping = False
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, env=self.env, pass_fds=self.pass_fds
        )

    async def bound_ports(self, within_s: float = 90.0) -> dict[str, int]:
        """The ports the process reported once it was listening (aicollect/handshake.py)."""
        assert self.ports_file is not None
        assert self.proc is not None
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            ports = read_ports(self.ports_file)
            if ports:
                return ports
            if self.proc.returncode is not None:
                raise StartFailed(
                    f"{self.name} exited with code {self.proc.returncode} during start-up"
                )
            await asyncio.sleep(0.05)
        raise StartFailed(f"{self.name} did not report its ports within {within_s:.0f}s")

    async def stop(self, grace: float) -> int:
        """SIGTERM, then SIGKILL after ``grace``; returns the exit code (0 when clean)."""
        if self.proc is None:
            return 0
        self.stopping = True
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                log.error("%s did not stop within %.0fs; killing it", self.name, grace)
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
                return 1
        code = self.proc.returncode or 0
        # A child stopped by our SIGTERM before installing handlers reports -SIGTERM.
        return 0 if code in (0, -signal.SIGTERM) else code


async def wait_ready(url: str, children: list[Child], within_s: float = 90.0) -> bool:
    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            for child in children:
                if child.proc is not None and child.proc.returncode is not None:
                    log.error(
                        "%s exited with code %s during start-up", child.name, child.proc.returncode
                    )
                    return False
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    if resp.status == 200:
                        return True
            await asyncio.sleep(0.3)
    return False


async def first_exit(children: list[Child]) -> Child:
    waits = {asyncio.ensure_future(c.proc.wait()): c for c in children if c.proc is not None}
    done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return waits[next(iter(done))]

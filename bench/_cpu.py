"""CPU time per process kind while a benchmark runs: each of our processes, and PostgreSQL.

A benchmark takes a ``snapshot()`` before and after the measured phase; ``since`` gives the
CPU seconds (user + system) each group spent in between. PostgreSQL's backends come and go
(one per connection): the postmaster's own time, its live children's, and what its exited
children left in its ``children_*`` counters together account for all of them. With the
embedded server that is exactly our database; with ``AICOLLECT_BENCH_DATABASE_URL`` on this
machine every ``postgres`` process is counted, so run on an otherwise idle server. The
emulator, the load generator and (with replicas) the balancer are left out: they stand in
for Intuit, the world and the load balancer. With replicas, a kind is all its replicas.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import asyncpg
import psutil
from sqlalchemy.engine import make_url

from aicollect.localstack import LocalStack

OURS = ("gateway", "integration", "matcher")


def _own(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def _with_reaped(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system + times.children_user + times.children_system)


def _tree(proc: psutil.Process) -> float:
    """A process, its exited children (reaped: in its counters) and its live ones."""
    total = _with_reaped(proc)
    for child in proc.children(recursive=True):
        try:
            total += _own(child)
        except psutil.NoSuchProcess:  # exited between listing and reading
            continue
    return total


@dataclass(frozen=True)
class Snapshot:
    seconds: dict[str, float]


class CpuMeter:
    def __init__(self, stack: LocalStack) -> None:
        # Per kind: every replica of it (``matcher``, or ``matcher-1``, ``matcher-2``...).
        self._ours: dict[str, list[psutil.Process]] = {}
        for name, child in stack.children.items():
            kind = name.partition("-")[0]
            if kind in OURS and child.proc is not None and child.proc.returncode is None:
                self._ours.setdefault(kind, []).append(psutil.Process(child.proc.pid))
        self._postmaster: psutil.Process | None = None
        if stack.postgres is not None:
            pid_file = stack.postgres.pgdata / "postmaster.pid"
            self._postmaster = psutil.Process(int(pid_file.read_text().split()[0]))

    def snapshot(self) -> Snapshot:
        seconds = {kind: sum(_tree(p) for p in procs) for kind, procs in self._ours.items()}
        if self._postmaster is not None:
            seconds["postgresql"] = _tree(self._postmaster)
        else:
            seconds["postgresql"] = _external_postgres()
        return Snapshot(seconds)

    @staticmethod
    def since(before: Snapshot, after: Snapshot) -> dict[str, float]:
        """CPU seconds per group between two snapshots, and their ``total``."""
        spent = {k: max(0.0, after.seconds[k] - before.seconds.get(k, 0.0)) for k in after.seconds}
        spent["total"] = sum(spent.values())
        return spent


def _external_postgres() -> float:
    """Every PostgreSQL server on this machine: each postmaster's whole tree."""
    total = 0.0
    for proc in psutil.process_iter(["name"]):
        try:
            if proc.info["name"] == "postgres" and proc.parent().name() != "postgres":
                total += _tree(proc)
        except (psutil.NoSuchProcess, AttributeError):
            continue
    return total


def per_unit_ms(spent: dict[str, float], units: int) -> dict[str, float]:
    """Milliseconds of CPU per unit of work (webhook, payment), per group."""
    return {k: round(v * 1000 / max(1, units), 3) for k, v in spent.items()}


def describe(per_unit: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in per_unit.items())


def load_average() -> str:
    """The machine's 1, 5 and 15 minute load averages, recorded beside every figure (the
    cores are shared: wall-clock figures mean little without it)."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


# A backend reports its counters when it goes idle, at most once a second (later only when
# the shared statistics are contended): read them once every backend has had that long.
STATS_SETTLE_S = 3.0


async def transactions(database_url: str) -> int:
    """Transactions committed or rolled back in our database so far (PostgreSQL's own
    counters, every process's connections together; this query adds one)."""
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    conn = await asyncpg.connect(dsn)
    try:
        value = await conn.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database"
            " WHERE datname = current_database()"
        )
    finally:
        await conn.close()
    return int(value)

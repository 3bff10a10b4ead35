"""A private PostgreSQL server for local runs and tests, from the ``pgserver`` wheel.

PostgreSQL refuses to run as root, so as root the server runs as a system user
``pgserver`` (created on first use), which owns the data folder. It listens on
127.0.0.1 (so psql, grpcurl users and child processes can reach it) and on a Unix socket
inside the data folder.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pwd
import shutil
import socket
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

RUN_AS = "pgserver"


def _bin_dir() -> Path:
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the 'pgserver' package is not installed (pip install pgserver)")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise RuntimeError(f"pgserver binaries not found in {path}")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedPostgres:
    """Starts (initialising if needed) and stops one PostgreSQL server in ``data_dir``."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        self._bin = _bin_dir()
        self._as_root = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - fixed binaries, arguments from us
            [str(a) for a in args],
            check=True,
            capture_output=True,
            text=True,
            user=RUN_AS if self._as_root else None,
        )

    def _prepare_root(self) -> None:
        try:
            pwd.getpwnam(RUN_AS)
        except KeyError:
            subprocess.run(  # noqa: S603
                ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", RUN_AS],  # noqa: S607
                check=True,
                capture_output=True,
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.data_dir, RUN_AS, RUN_AS)
        # Every parent must be traversable by the server's user.
        for parent in self.data_dir.parents:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                os.chmod(parent, mode | 0o011)  # noqa: S103 - traverse only, no read

    def start(self) -> None:
        if self._as_root:
            self._prepare_root()
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        pgdata = self.data_dir / "pgdata"
        if not (pgdata / "PG_VERSION").exists():
            log.info("initialising embedded PostgreSQL in %s", pgdata)
            self._run(
                self._bin / "initdb",
                "-D",
                pgdata,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-instructions",
            )
        stale = pgdata / "postmaster.pid"
        if stale.exists():
            # A previous run was killed; pg_ctl start copes with a stale pid file itself.
            log.warning("found %s from an earlier run", stale)
        opts = f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} -c max_connections=200 -c fsync=on"
        self._run(
            self._bin / "pg_ctl",
            "-D",
            pgdata,
            "-w",
            "-t",
            "60",
            "-l",
            self.data_dir / "postgres.log",
            "-o",
            opts,
            "start",
        )
        log.info("embedded PostgreSQL listening on 127.0.0.1:%d", self.port)

    def stop(self) -> None:
        pgdata = self.data_dir / "pgdata"
        if not (pgdata / "postmaster.pid").exists():
            return
        try:
            self._run(self._bin / "pg_ctl", "-D", pgdata, "-w", "-t", "30", "-m", "fast", "stop")
        except subprocess.CalledProcessError as exc:
            log.error("stopping embedded PostgreSQL failed: %s", exc.stderr.strip())

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

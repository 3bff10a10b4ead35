"""A private PostgreSQL server for local runs and tests, from the ``pgserver`` wheel.

PostgreSQL refuses to run as root, so as root the server runs as a system user
``pgserver`` (created on first use). That user must reach the binaries and the data
folder, but a clone may sit in a folder only root can enter (``/root``, ``mktemp -d``), and
nothing outside the project may have its permissions changed. So each start creates a
private runtime folder under the system temp folder (``mkdtemp``: 0700, handed to that
user) holding a copy of the server's install tree and the Unix socket; it is removed on
stop. The data folder stays where it was asked for when that user can reach it; otherwise
the server works on a copy in the runtime folder, copied back when it stops cleanly (a
warning says so; after a crash the changes since the start are lost).

It listens on 127.0.0.1 (so psql, grpcurl users and child processes can reach it) and on a
Unix socket in the runtime folder.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
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


def _copy_install(bin_dir: Path, into: Path) -> Path:
    """Copies the server's install tree into ``into``; returns the copy's ``bin`` folder.

    The layout ``pgserver/pginstall/{bin,lib,share}`` next to ``pgserver.libs`` is kept, as
    the binaries find their libraries and share files relative to themselves.
    """
    install = bin_dir.parent
    target = into / "pgserver" / "pginstall"
    for part in ("bin", "lib", "share"):
        shutil.copytree(install / part, target / part, ignore=shutil.ignore_patterns("*.a"))
    libs = install.parent.parent / "pgserver.libs"
    if libs.is_dir():
        shutil.copytree(libs, into / "pgserver.libs")
    return target / "bin"


def _chown_tree(root: Path, user: str) -> None:
    shutil.chown(root, user, user)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            os.chown(Path(folder) / name, *_ids(user), follow_symlinks=False)


def _ids(user: str) -> tuple[int, int]:
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def free_port() -> int:
    """A port free now, for the embedded PostgreSQL only: it cannot be told to listen on
    port 0 and report which (it names its socket file after its port). Every other process
    binds port 0 itself (aicollect/handshake.py); tests/test_architecture.py keeps it so."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedPostgres:
    """Starts (initialising if needed) and stops one PostgreSQL server in ``data_dir``."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        self._installed_bin = _bin_dir()
        self._bin = self._installed_bin
        self._as_root = os.geteuid() == 0
        self._runtime: Path | None = None
        # Where pgdata and the server log live: data_dir, or the runtime folder (see start).
        self.home = self.data_dir

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    def _run(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - fixed binaries, arguments from us
            [str(a) for a in args],
            check=check,
            capture_output=True,
            text=True,
            user=RUN_AS if self._as_root else None,
        )

    def _prepare_root(self, runtime: Path) -> None:
        """As root: the server's user, a private copy of the binaries, a reachable home."""
        try:
            pwd.getpwnam(RUN_AS)
        except KeyError:
            subprocess.run(  # noqa: S603
                ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", RUN_AS],  # noqa: S607
                check=True,
                capture_output=True,
            )
        self._bin = _copy_install(self._installed_bin, runtime)
        _chown_tree(runtime, RUN_AS)
        if self._run("test", "-x", self._bin / "postgres", check=False).returncode != 0:
            raise RuntimeError(
                f"the '{RUN_AS}' user cannot reach {runtime}; set TMPDIR to a folder that "
                "every user can traverse (such as /tmp)"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chown(self.data_dir, *_ids(RUN_AS))
        if self._run("test", "-w", self.data_dir, check=False).returncode != 0:
            # A parent folder shuts the server's user out (a clone in /root or in a 0700
            # temporary folder). Its permissions are not ours to change, so the server
            # works on a copy in the runtime folder, saved back on a clean stop.
            self.home = runtime
            saved = self.data_dir / "pgdata"
            previous = saved.with_name("pgdata.old")
            if not saved.exists() and previous.exists():  # a save cut short between renames
                previous.rename(saved)
            if (saved / "PG_VERSION").exists():
                shutil.copytree(saved, self.pgdata, symlinks=True)
                _chown_tree(self.pgdata, RUN_AS)
            log.warning(
                "the '%s' user cannot reach %s (a parent folder is private): the database "
                "runs in %s and is saved back to %s only when it stops cleanly",
                RUN_AS,
                self.data_dir,
                runtime,
                saved,
            )

    def start(self) -> None:
        runtime = Path(tempfile.mkdtemp(prefix="aicollect-pg-"))
        self._runtime = runtime
        try:
            if self._as_root:
                self._prepare_root(runtime)
            else:
                self.data_dir.mkdir(parents=True, exist_ok=True)
            self._start()
        except BaseException:
            self._remove_runtime()
            raise

    def _start(self) -> None:
        assert self._runtime is not None
        pgdata = self.pgdata
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
        opts = f"-h 127.0.0.1 -p {self.port} -k {self._runtime} -c max_connections=200 -c fsync=on"
        self._run(
            self._bin / "pg_ctl",
            "-D",
            pgdata,
            "-w",
            "-t",
            "60",
            "-l",
            self.home / "postgres.log",
            "-o",
            opts,
            "start",
        )
        log.info("embedded PostgreSQL listening on 127.0.0.1:%d", self.port)

    def stop(self) -> None:
        try:
            if (self.pgdata / "postmaster.pid").exists():
                self._run(
                    self._bin / "pg_ctl", "-D", self.pgdata, "-w", "-t", "30", "-m", "fast", "stop"
                )
        except subprocess.CalledProcessError as exc:
            log.error("stopping embedded PostgreSQL failed: %s", exc.stderr.strip())
            return  # the server may still be running from the runtime folder
        if self.home != self.data_dir and (self.pgdata / "PG_VERSION").exists():
            self._save_back()
        self._remove_runtime()

    def _save_back(self) -> None:
        """Replaces ``data_dir/pgdata`` with the stopped server's copy (see _prepare_root)."""
        saved = self.data_dir / "pgdata"
        incoming, outgoing = saved.with_name("pgdata.saving"), saved.with_name("pgdata.old")
        for leftover in (incoming, outgoing):
            shutil.rmtree(leftover, ignore_errors=True)
        shutil.copytree(self.pgdata, incoming, symlinks=True)
        _chown_tree(incoming, RUN_AS)
        if saved.exists():
            saved.rename(outgoing)
        incoming.rename(saved)
        shutil.rmtree(outgoing, ignore_errors=True)
        log.info("embedded PostgreSQL's data saved to %s", saved)

    def _remove_runtime(self) -> None:
        if self._runtime is not None:
            shutil.rmtree(self._runtime, ignore_errors=True)
            self._runtime = None
            self._bin = self._installed_bin
            self.home = self.data_dir

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

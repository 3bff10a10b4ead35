"""The whole system on one machine (``LocalStack``): what ``aicollect run`` starts
(``aicollect/local_run.py`` runs it in the foreground; its generated secrets are in
``aicollect/local_secrets.py``), and the one harness that starts the real processes for
the tests and the benchmarks (``running_stack``).

Starts, in order: the embedded PostgreSQL (unless ``AICOLLECT_DATABASE_URL`` is set), the
migrations, the Intuit emulator (unless real Intuit URLs are configured) and the matcher,
then the integration service, then the gateway, each as its own child process. Prints every
address (and writes them to ``addresses.json`` in the data folder), then waits. SIGINT or
SIGTERM stops the children in reverse order (each gets SIGTERM and the shutdown grace), then
the database; the exit code is 0 when everything stopped cleanly.

Any port may be configured as 0: the process binds a free one and reports it
(aicollect/handshake.py), and the processes started after it are given the real address.
The gateway's socket is bound here and handed down, since the others need its URL first.
Nothing is chosen before it is bound, so nothing can take a port in between.

The emulator is a development tool in its own package (``emulators/``): this module starts
it as ``python -m emulators.qbo`` and never imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from aicollect.children import Child, StartFailed, wait_ready
from aicollect.db.embedded import EmbeddedPostgres
from aicollect.db.migrate import upgrade_async
from aicollect.handshake import (
    EMULATOR_CLIENT_SECRET_ENV,
    EMULATOR_VERIFIER_TOKEN_ENV,
    GATEWAY_LISTEN_FD_ENV,
    XERO_EMULATOR_CLIENT_SECRET_ENV,
    XERO_EMULATOR_WEBHOOK_KEY_ENV,
)
from aicollect.local_secrets import (
    DASHBOARD_LINK_FILE,
    DASHBOARD_PATH,
    load_local_secrets,
    local_dashboard_link,
)
from aicollect.settings import Settings

log = logging.getLogger("aicollect.run")

__all__ = ["Child", "LocalStack", "StartFailed", "isolated_env", "running_stack"]


EMULATOR_MODULE = "emulators.qbo"
XERO_EMULATOR_MODULE = "emulators.xero"
DEFAULT_DASHBOARD = Settings.model_fields["dashboard_url"].default


def _split_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host, int(port)


class LocalStack:
    """The multi-process system: embedded PostgreSQL (unless a URL is configured), migrations,
    the emulator (unless real Intuit URLs are configured), matcher, integration, gateway.

    ``aicollect run`` uses it, and so do the benchmarks and the tests (``running_stack``),
    which also kill and restart single processes (``kill``, ``restart``).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        env: dict[str, str] | None = None,
        seed_demo: bool = True,
        emulator_args: list[str] | None = None,
        replicas: int = 1,
    ) -> None:
        if replicas < 1:
            raise ValueError("replicas must be at least 1")
        self.settings = settings
        self.replicas = replicas
        # Each gateway replica's own URL (with replicas, ``gateway_url`` is the balancer's).
        self.gateway_urls: list[str] = []
        self.data_dir = settings.data_dir.resolve()
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("AICOLLECT_LOG_FORMAT", "text")
        for key, value in load_local_secrets(self.data_dir).items():
            self.env.setdefault(key, value)
        # Known once the gateway's socket is bound (start).
        self.gateway_url = f"http://{settings.gateway_host}:{settings.gateway_port}"
        self.seed_demo = seed_demo
        self.emulator_args = emulator_args or []
        self.postgres: EmbeddedPostgres | None = None
        self.emulator_url: str | None = None
        self.xero_emulator_url: str | None = None
        self.children: dict[str, Child] = {}
        self._run_dir: Path | None = None

    @property
    def database_url(self) -> str:
        return self.env["AICOLLECT_DATABASE_URL"]

    @property
    def integration_addr(self) -> str:
        return self.env.get("AICOLLECT_INTEGRATION_ADDR", self.settings.integration_addr)

    @property
    def matcher_addr(self) -> str:
        return self.env.get("AICOLLECT_MATCHER_ADDR", self.settings.matcher_addr)

    def addresses(self) -> dict[str, str]:
        """Where each process listens (after ``start``)."""
        found = {
            "gateway": self.gateway_url,
            "integration": self.integration_addr,
            "matcher": self.matcher_addr,
        }
        if self.emulator_url:
            found["emulator"] = self.emulator_url
        if self.xero_emulator_url:
            found["xero-emulator"] = self.xero_emulator_url
        if self.postgres is not None:
            found["postgres"] = f"postgresql://postgres@127.0.0.1:{self.postgres.port}/postgres"
        return found

    async def start(self) -> bool:
        """Starts everything; False (with everything stopped) if it did not become ready."""
        try:
            await self._start()
        except (StartFailed, OSError) as exc:
            log.error("the stack did not start: %s; stopping", exc)
            await self.stop()
            return False
        children = list(self.children.values())
        urls = dict.fromkeys([*self.gateway_urls, self.gateway_url])
        if all([await wait_ready(f"{url}/readyz", children) for url in urls]):
            (self.data_dir / "addresses.json").write_text(
                json.dumps(self.addresses(), indent=2) + "\n"
            )
            self._write_dashboard_link()
            return True
        log.error("the stack did not become ready; stopping")
        await self.stop()
        return False

    def _write_dashboard_link(self) -> None:
        """In local mode, the reference page's link with a token for ``LOCAL_TENANT``, in a
        file only the owner reads (a token is never printed or logged)."""
        path = self.data_dir / DASHBOARD_LINK_FILE
        path.unlink(missing_ok=True)
        secret = self.env.get("AICOLLECT_JWT_SECRET")
        if self.settings.env != "local" or not secret:
            return
        link = local_dashboard_link(self.gateway_url, secret, self.settings)
        path.touch(mode=0o600)
        path.write_text(link + "\n")

    async def _start(self) -> None:
        if self.settings.uses_emulator and importlib.util.find_spec("emulators") is None:
            raise StartFailed(
                "the Intuit emulator (emulators/, a development tool) is not installed; "
                "run from a source checkout or configure Intuit's URLs"
            )
        if self.settings.database_url is None:
            self.postgres = EmbeddedPostgres(self.data_dir / "postgres")
            await asyncio.to_thread(self.postgres.start)
            self.env["AICOLLECT_DATABASE_URL"] = self.postgres.url
        await upgrade_async(self.database_url)
        self._run_dir = Path(tempfile.mkdtemp(prefix="aicollect-run-"))
        env = self.env

        # The gateway's socket first: the emulator and the integration need its URL. With
        # replicas, it is the balancer's, and each gateway gets a socket of its own.
        host = self.settings.gateway_host
        self._check_replica_host()
        try:
            sock = socket.create_server((host, self.settings.gateway_port))
            socks = [sock]
            if self.replicas > 1:
                socks = [socket.create_server((host, 0)) for _ in range(self.replicas)]
        except OSError as exc:
            raise StartFailed(
                f"cannot listen on {host}:{self.settings.gateway_port}: {exc}"
            ) from exc
        self.gateway_url = f"http://{host}:{sock.getsockname()[1]}"
        env.setdefault("QBO_REDIRECT_URI", f"{self.gateway_url}/v1/integrations/qbo/callback")
        env.setdefault("XERO_REDIRECT_URI", f"{self.gateway_url}/v1/integrations/xero/callback")
        if self.settings.env == "local" and self.settings.dashboard_url == DEFAULT_DASHBOARD:
            # Nothing configured: the consent screen sends the browser back to the gateway's
            # own reference page (served in local mode only).
            env.setdefault("AICOLLECT_DASHBOARD_URL", f"{self.gateway_url}{DASHBOARD_PATH}")

        try:
            await self._start_services(env)
            for name, own in zip(self._names("gateway"), socks, strict=True):
                self.gateway_urls.append(f"http://{host}:{own.getsockname()[1]}")
                child = self._child(name, [sys.executable, "-m", "gateway"])
                await self._start_gateway(child, own, env)
            if self.replicas > 1:
                argv = [sys.executable, "-m", "aicollect.balancer", *self.gateway_urls]
                await self._start_gateway(self._child("balancer", argv), sock, env)
        finally:
            for each in {sock, *socks}:
                each.close()

    def _names(self, kind: str) -> list[str]:
        """The children of one kind: ``matcher``, or ``matcher-1`` ... with replicas."""
        if self.replicas == 1:
            return [kind]
        return [f"{kind}-{i}" for i in range(1, self.replicas + 1)]

    def _check_replica_host(self) -> None:
        """Replicas are given each other's addresses as one ``ipv4:`` gRPC target."""
        for addr in (self.settings.matcher_addr, self.settings.integration_addr):
            host = _split_addr(addr)[0]
            if self.replicas > 1 and not re.fullmatch(r"\d+\.\d+\.\d+\.\d+", host):
                raise StartFailed(f"with replicas, listen on an IPv4 address, not {host!r}")

    def _replica_env(self, variable: str, configured: str) -> dict[str, str]:
        """With replicas, each binds a port the kernel picks (metrics too)."""
        if self.replicas == 1:
            return {}
        return {
            variable: f"{_split_addr(configured)[0]}:0",
            "AICOLLECT_INTEGRATION_METRICS_PORT": "0",
            "AICOLLECT_MATCHER_METRICS_PORT": "0",
        }

    async def _start_services(self, env: dict[str, str]) -> None:
        """The emulator and the matcher (they need nobody else's address), then the
        integration service, each on the address the previous ones reported."""
        py = sys.executable
        first: list[Child] = []
        if self.settings.uses_emulator:
            argv = [
                py, "-m", EMULATOR_MODULE,
                # "--flag=value": a value may begin with "-".
                "--host=127.0.0.1", f"--port={self.settings.emulator_port}",
                f"--client-id={env['QBO_CLIENT_ID']}",
                f"--redirect-uri={env['QBO_REDIRECT_URI']}",
                f"--webhook-url={self.gateway_url}/v1/webhooks/qbo",
                *self.emulator_args,
            ]  # fmt: skip
            if self.seed_demo:
                argv += ["--demo-company", "--demo-customers", "40", "--demo-invoices", "400"]
            secrets_env = {
                EMULATOR_CLIENT_SECRET_ENV: env["QBO_CLIENT_SECRET"],
                EMULATOR_VERIFIER_TOKEN_ENV: env["QBO_WEBHOOK_VERIFIER_TOKEN"],
            }
            first.append(self._child("emulator", argv, extra_env=secrets_env))
        if self.settings.uses_xero_emulator:
            first.append(self._xero_emulator(env))
        matcher_env = self._replica_env("AICOLLECT_MATCHER_ADDR", self.settings.matcher_addr)
        for name in self._names("matcher"):
            first.append(self._child(name, [py, "-m", "services.matcher"], extra_env=matcher_env))
        for child in first:
            await child.start(env)
        if self.settings.uses_emulator:
            emulator = self.children["emulator"]
            port = self.settings.emulator_port or (await emulator.bound_ports())["http"]
            # A restart binds the same port: the integration service was given this one.
            emulator.argv = [
                f"--port={port}" if arg.startswith("--port=") else arg for arg in emulator.argv
            ]
            self.emulator_url = f"http://127.0.0.1:{port}"
            env["QBO_DISCOVERY_URL"] = f"{self.emulator_url}/.well-known/openid_configuration"
            env["QBO_API_BASE_URL"] = self.emulator_url
        if self.settings.uses_xero_emulator:
            await self._learn_xero_emulator(env)
        await self._learn_addr("matcher", "AICOLLECT_MATCHER_ADDR", self.settings.matcher_addr)

        own_env = self._replica_env("AICOLLECT_INTEGRATION_ADDR", self.settings.integration_addr)
        for name in self._names("integration"):
            argv = [py, "-m", "services.integration"]
            await self._child(name, argv, extra_env=own_env).start(env)
        await self._learn_addr(
            "integration", "AICOLLECT_INTEGRATION_ADDR", self.settings.integration_addr
        )

    def _xero_emulator(self, env: dict[str, str]) -> Child:
        """The Xero emulator beside the Intuit one: our app registered with the gateway's
        callback and webhook URLs, its secrets in the environment."""
        argv = [
            sys.executable, "-m", XERO_EMULATOR_MODULE,
            "--host=127.0.0.1", f"--port={self.settings.xero_emulator_port}",
            f"--client-id={env['XERO_CLIENT_ID']}",
            f"--redirect-uri={env['XERO_REDIRECT_URI']}",
            f"--webhook-url={self.gateway_url}/v1/webhooks/xero",
        ]  # fmt: skip
        if self.seed_demo:
            argv += ["--demo-organisation", "--demo-contacts", "40", "--demo-invoices", "400"]
        secrets_env = {
            XERO_EMULATOR_CLIENT_SECRET_ENV: env["XERO_CLIENT_SECRET"],
            XERO_EMULATOR_WEBHOOK_KEY_ENV: env["XERO_WEBHOOK_KEY"],
        }
        return self._child("xero-emulator", argv, extra_env=secrets_env)

    async def _learn_xero_emulator(self, env: dict[str, str]) -> None:
        child = self.children["xero-emulator"]
        port = self.settings.xero_emulator_port or (await child.bound_ports())["http"]
        child.argv = [f"--port={port}" if a.startswith("--port=") else a for a in child.argv]
        url = self.xero_emulator_url = f"http://127.0.0.1:{port}"
        env["XERO_AUTHORIZE_URL"] = f"{url}/identity/connect/authorize"
        env["XERO_TOKEN_URL"] = f"{url}/connect/token"
        env["XERO_REVOCATION_URL"] = f"{url}/connect/revocation"
        env["XERO_API_BASE_URL"] = url

    @staticmethod
    async def _start_gateway(child: Child, sock: socket.socket, env: dict[str, str]) -> None:
        """Starts the gateway on ``sock``, then closes this process's copy: the gateway holds
        the only one, so while it is down, connections are refused (as in production)."""
        port = sock.getsockname()[1]
        try:
            fd = sock.fileno()
            child.pass_fds = (fd,)
            await child.start(env | {GATEWAY_LISTEN_FD_ENV: str(fd)})
        finally:
            sock.close()
        # A restart binds the same port itself, as the other processes do.
        child.pass_fds = ()
        del child.env[GATEWAY_LISTEN_FD_ENV]
        child.env["AICOLLECT_GATEWAY_PORT"] = str(port)

    def _child(
        self,
        name: str,
        argv: list[str],
        *,
        extra_env: dict[str, str] | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> Child:
        assert self._run_dir is not None
        child = Child(
            name,
            argv,
            extra_env=extra_env or {},
            ports_file=self._run_dir / f"{name}.ports.json",
            pass_fds=pass_fds,
        )
        self.children[name] = child
        return child

    async def _learn_addr(self, kind: str, variable: str, configured: str) -> None:
        """The address of the processes of ``kind`` goes into ``variable`` for the processes
        started after them (with replicas, one ``ipv4:`` target naming every replica: the
        clients balance over them), and each replica's own into its restarts' environment;
        with the port it bound if it was asked for 0."""
        host, port = _split_addr(configured)
        found: list[str] = []
        for name in self._names(kind):
            child = self.children[name]
            bound = port if port and self.replicas == 1 else (await child.bound_ports())["grpc"]
            child.env[variable] = f"{host}:{bound}"
            found.append(child.env[variable])
        self.env[variable] = found[0] if len(found) == 1 else "ipv4:" + ",".join(found)

    async def kill(self, name: str) -> None:
        """SIGKILL one process (a crash, for fault tests)."""
        child = self.children[name]
        assert child.proc is not None
        child.proc.kill()
        await child.proc.wait()

    async def restart(self, name: str) -> None:
        """Starts a stopped process again, on the addresses it had."""
        await self.children[name].start()

    async def stop(self) -> int:
        """Stops the children in reverse order, then the database; 0 when all were clean."""
        exit_code = 0
        grace = self.settings.shutdown_grace_seconds + 5
        for child in reversed(list(self.children.values())):
            code = await child.stop(grace)
            if code != 0:
                log.error("%s stopped with exit code %s", child.name, code)
                exit_code = 1
        if self._run_dir is not None:
            shutil.rmtree(self._run_dir, ignore_errors=True)
            self._run_dir = None
        (self.data_dir / "addresses.json").unlink(missing_ok=True)
        (self.data_dir / DASHBOARD_LINK_FILE).unlink(missing_ok=True)
        if self.postgres is not None:
            await asyncio.to_thread(self.postgres.stop)
        return exit_code


def isolated_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """An environment for a stack of its own: this process's environment without any
    ``AICOLLECT_``/``QBO_`` setting, data in ``data_dir``, every process on a port the kernel
    picks, metrics off, a short shutdown grace; then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AICOLLECT_", "QBO_"))}
    env.update(
        AICOLLECT_DATA_DIR=str(data_dir),
        AICOLLECT_GATEWAY_PORT="0",
        AICOLLECT_INTEGRATION_ADDR="127.0.0.1:0",
        AICOLLECT_MATCHER_ADDR="127.0.0.1:0",
        AICOLLECT_EMULATOR_PORT="0",
        AICOLLECT_XERO_EMULATOR_PORT="0",
        AICOLLECT_INTEGRATION_METRICS_PORT="0",
        AICOLLECT_MATCHER_METRICS_PORT="0",
        AICOLLECT_SHUTDOWN_GRACE_SECONDS="5",
    )
    env.update(extra)
    return env


@contextlib.asynccontextmanager
async def running_stack(
    *,
    extra_env: dict[str, str] | None = None,
    emulator_args: list[str] | None = None,
    database_url: str | None = None,
    replicas: int = 1,
) -> AsyncIterator[LocalStack]:
    """The system as ``aicollect run`` starts it, on ports the kernel picks, in a temporary
    data folder (with an embedded PostgreSQL unless ``database_url`` is given): what the
    benchmarks and the process tests run against. ``replicas``: of each of our processes,
    with the balancer in front of the gateways."""
    with tempfile.TemporaryDirectory(prefix="aicollect-stack-") as tmp:
        env = isolated_env(Path(tmp), **{"AICOLLECT_LOG_LEVEL": "WARNING", **(extra_env or {})})
        if database_url:
            env["AICOLLECT_DATABASE_URL"] = database_url
        stack = LocalStack(
            Settings.from_env(env),
            env=env,
            seed_demo=False,
            emulator_args=emulator_args,
            replicas=replicas,
        )
        if not await stack.start():
            raise RuntimeError("the stack did not start; see the log above")
        try:
            yield stack
        finally:
            await stack.stop()

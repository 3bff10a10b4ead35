"""``python -m emulators.qbo`` and ``aicollect emulator``: prints its address, serves,
stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from aicollect.handshake import PORTS_FILE_ENV, read_ports
from emulators.qbo.cli import CLIENT_SECRET_ENV


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback only
        return json.load(resp)


async def test_cli_serves_demo_company_and_stops_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "emulators.qbo", "--port", "0",
        "--client-id", "cli-app", "--client-secret", "s3cret",
        "--redirect-uri", "http://127.0.0.1:9/cb", "--redirect-uri", "http://127.0.0.1:9/cb2",
        "--demo-company", "--demo-customers", "10", "--demo-invoices", "40",
        "--demo-overdue-fraction", "0.5", "--seed", "4",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(20):
            first = (await proc.stdout.readline()).decode()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", first)
        assert match, first
        base = match.group(1)
        doc = await asyncio.to_thread(_get, f"{base}/.well-known/openid_configuration")
        assert doc["token_endpoint"] == f"{base}/oauth2/v1/tokens/bearer"
        companies = await asyncio.to_thread(_get, f"{base}/_emulator/companies")
        [company] = companies["companies"]
        assert company["counts"]["invoices"] == 40
        assert company["counts"]["overdue_invoices"] == 20
        apps = await asyncio.to_thread(_get, f"{base}/_emulator/apps")
        [app] = apps["apps"]
        assert app["redirect_uris"] == ["http://127.0.0.1:9/cb", "http://127.0.0.1:9/cb2"]
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            rest, errors = await proc.communicate()
    assert proc.returncode == 0, errors.decode()
    assert "stopping" in rest.decode()


AICOLLECT = str(Path(sys.executable).parent / "aicollect")


def test_aicollect_emulator_help_prints_the_emulators_usage() -> None:
    done = subprocess.run(
        [AICOLLECT, "emulator", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: aicollect emulator"), done.stdout
    for flag in ("--port", "--client-secret", "--demo-company"):
        assert flag in done.stdout


def test_aicollect_emulator_refuses_an_unknown_flag() -> None:
    done = subprocess.run(
        [AICOLLECT, "emulator", "--prot", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "unrecognized arguments: --prot" in done.stderr


def _token_status(base: str, secret: str) -> int:
    basic = base64.b64encode(f"cli-app:{secret}".encode()).decode()
    request = urllib.request.Request(  # noqa: S310 - loopback only
        f"{base}/oauth2/v1/tokens/bearer",
        data=b"grant_type=authorization_code&code=nope&redirect_uri=http://127.0.0.1:9/cb",
        headers={"Authorization": f"Basic {basic}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


async def test_aicollect_emulator_port_flag_and_client_secret_from_the_environment(
    tmp_path: Path,
) -> None:
    """`aicollect emulator --port 0` (run as `python -m emulators.qbo`) binds a free port and
    reports it to whoever started it; the app's secret comes from the environment (a command
    line is visible to every user), and may begin with '-'."""
    ports_file = tmp_path / "emulator.ports.json"
    proc = await asyncio.create_subprocess_exec(
        AICOLLECT, "emulator", "--port", "0", "--client-id", "cli-app",
        "--redirect-uri", "http://127.0.0.1:9/cb",
        env={**os.environ, CLIENT_SECRET_ENV: "-env-secret-1", PORTS_FILE_ENV: str(ports_file)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(30):
            first = (await proc.stdout.readline()).decode()
        reported = read_ports(ports_file)
        assert reported is not None
        port = reported["http"]
        assert first.rstrip().endswith(f"listening on http://127.0.0.1:{port}"), first
        base = f"http://127.0.0.1:{port}"
        # A known client with a bad code: 400 invalid_grant; a wrong secret: 401.
        assert await asyncio.to_thread(_token_status, base, "-env-secret-1") == 400
        assert await asyncio.to_thread(_token_status, base, "wrong") == 401
        cmdline = await asyncio.to_thread(Path(f"/proc/{proc.pid}/cmdline").read_bytes)
        assert b"cli-app" in cmdline
        assert b"env-secret" not in cmdline
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            _, errors = await proc.communicate()
    assert proc.returncode == 0, errors.decode()

"""``python -m emulators.xero``: prints its addresses, serves, stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import urllib.request
from typing import Any

from emulators.xero.cli import CLIENT_SECRET_ENV


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback only
        return json.load(resp)


async def test_cli_serves_a_demo_organisation_and_stops_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "emulators.xero", "--port", "0",
        "--client-id", "cli-app", "--redirect-uri", "http://127.0.0.1:9/cb",
        "--demo-organisation", "--demo-contacts", "5", "--demo-invoices", "30",
        "--demo-tenant-id", "11111111-2222-4333-8444-555555555555", "--starter-tier",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", CLIENT_SECRET_ENV: "from-the-environment"},
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(20):
            first = (await proc.stdout.readline()).decode()
        match = re.search(r"Xero emulator listening on (http://127\.0\.0\.1:\d+)", first)
        assert match, first
        base = match.group(1)
        orgs = await asyncio.to_thread(_get, f"{base}/_emulator/organisations")
        [org] = orgs["organisations"]
        assert org["tenant_id"] == "11111111-2222-4333-8444-555555555555"
        assert org["counts"]["invoices"] == 30
        assert org["starter_tier"] is True
        [app] = (await asyncio.to_thread(_get, f"{base}/_emulator/apps"))["apps"]
        assert app["client_secret"] == "from-the-environment"
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            rest, errors = await proc.communicate()
    assert proc.returncode == 0, errors.decode()
    assert "Xero emulator stopping" in rest.decode()


def test_help_lists_the_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "emulators.xero", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    for option in ("--port", "--client-id", "--webhook-key", "--demo-organisation"):
        assert option in result.stdout


def test_a_client_id_without_a_secret_is_refused() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "emulators.xero", "--client-id", "x"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert CLIENT_SECRET_ENV in result.stderr

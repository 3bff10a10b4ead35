"""``python -m aicollect.emulator``: prints its address, serves, stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import urllib.request
from typing import Any


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback only
        return json.load(resp)


async def test_cli_serves_demo_company_and_stops_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aicollect.emulator", "--port", "0",
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

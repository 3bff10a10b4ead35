"""`aicollect run` end to end, as an engineer uses it: start, grpcurl, kill switch, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aicollect.db.embedded import free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Stack:
    def __init__(self, tmp_path: Path) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.ports = {name: free_port() for name in ("gateway", "integration", "matcher", "emu")}
        self.data_dir = tmp_path / "data"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AICOLLECT_", "QBO_")) and k != "PYTEST_CURRENT_TEST"
        }
        env.update(
            AICOLLECT_DATA_DIR=str(self.data_dir),
            AICOLLECT_GATEWAY_PORT=str(self.ports["gateway"]),
            AICOLLECT_INTEGRATION_ADDR=f"127.0.0.1:{self.ports['integration']}",
            AICOLLECT_MATCHER_ADDR=f"127.0.0.1:{self.ports['matcher']}",
            AICOLLECT_EMULATOR_PORT=str(self.ports["emu"]),
            AICOLLECT_SHUTDOWN_GRACE_SECONDS="5",
            AICOLLECT_INTEGRATION_METRICS_PORT=str(free_port()),
        )
        self.log = tmp_path / "run.log"
        self._log_file = self.log.open("w")
        self.proc = subprocess.Popen(
            [str(BIN / "aicollect"), "run"],
            cwd=ROOT,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def wait_up(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "local stack is up" in self.log.read_text():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.3)
        raise AssertionError(f"stack did not come up:\n{self.log.read_text()[-4000:]}")

    def token(self) -> str:
        for line in (self.data_dir / "local.env").read_text().splitlines():
            if line.startswith("export AICOLLECT_INTERNAL_TOKEN="):
                return line.split("=", 1)[1].strip("'")
        raise AssertionError("no token in local.env")

    def grpcurl(self, *args: str, token: bool = True) -> subprocess.CompletedProcess[str]:
        auth = ["-H", f"authorization: Bearer {self.token()}"] if token else []
        return subprocess.run(
            [str(BIN / "grpcurl"), "-plaintext", *auth, *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return -9
        return self.proc.returncode


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    # Free ports are chosen before the processes bind them; under a busy test run another
    # process can take one in between, so a start that fails is retried on new ports.
    for attempt in range(3):
        s = Stack(tmp_path / f"try{attempt}")
        try:
            s.wait_up()
            break
        except AssertionError:
            s.stop()
            s._log_file.close()
            if attempt == 2:
                raise
    try:
        yield s
    finally:
        s.stop()
        s._log_file.close()


def test_run_serves_grpcurl_and_stops_cleanly_on_sigterm(stack: Stack) -> None:
    integration = f"127.0.0.1:{stack.ports['integration']}"

    listed = stack.grpcurl(integration, "list", token=False)
    assert listed.returncode == 0, listed.stderr
    services = set(listed.stdout.split())
    assert {
        "aicollect.integration.v1.IntegrationService",
        "aicollect.integration.v1.AdminService",
        "grpc.health.v1.Health",
    } <= services

    refused = stack.grpcurl(
        integration, "aicollect.integration.v1.AdminService/GetPlatformSettings", token=False
    )
    assert refused.returncode != 0
    assert "Unauthenticated" in refused.stderr

    flipped = stack.grpcurl(
        "-d",
        json.dumps(
            {
                "settings": {"qbo_kill_switch": True},
                "update_mask": {"paths": ["qbo_kill_switch"]},
                "actor": "oncall",
                "reason": "drill",
            }
        ),
        integration,
        "aicollect.integration.v1.AdminService/UpdatePlatformSettings",
    )
    assert flipped.returncode == 0, flipped.stderr
    read = stack.grpcurl(integration, "aicollect.integration.v1.AdminService/GetPlatformSettings")
    assert read.returncode == 0, read.stderr
    assert json.loads(read.stdout)["settings"].get("qbo_kill_switch") is True, read.stdout
    audit = stack.grpcurl(
        integration, "aicollect.integration.v1.AdminService/ListSettingsAuditEvents"
    )
    events = json.loads(audit.stdout)["events"]
    assert [(e["setting"], e["new_value"], e["actor"]) for e in events] == [
        ("qbo_kill_switch", "true", "oncall")
    ]

    started = time.monotonic()
    assert stack.stop() == 0, stack.log.read_text()[-3000:]
    assert time.monotonic() - started < 30
    for port in stack.ports.values():
        assert not _port_open(port), f"port {port} still open after stop"
    assert "stopped cleanly" in stack.log.read_text()

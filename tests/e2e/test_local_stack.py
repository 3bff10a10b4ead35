"""`aicollect run` end to end, as an engineer uses it: start, grpcurl, kill switch, SIGTERM."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aicollect.local_secrets import LOCAL_SECRETS
from aicollect.localstack import isolated_env
from tests.helpers.paths import REPO_ROOT as ROOT

BIN = Path(sys.executable).parent


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Stack:
    def __init__(
        self,
        tmp_path: Path,
        *,
        cwd: Path = ROOT,
        data_dir: Path | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.ports: dict[str, int] = {}  # known once up (addresses.json)
        self.data_dir = data_dir or tmp_path / "data"
        # Every process binds a port the kernel picks and reports it to `aicollect run`.
        env = isolated_env(self.data_dir, **(extra_env or {}))
        env.pop("PYTEST_CURRENT_TEST", None)
        self.env = env
        self.log = tmp_path / "run.log"
        self._log_file = self.log.open("w")
        self.proc = subprocess.Popen(
            [str(BIN / "aicollect"), "run"],
            cwd=cwd,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def wait_up(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "local stack is up" in self.log.read_text():
                addresses = json.loads((self.data_dir / "addresses.json").read_text())
                self.ports = {
                    name: int(addr.rsplit(":", 1)[1].split("/", 1)[0])
                    for name, addr in addresses.items()
                }
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.3)
        raise AssertionError(f"stack did not come up:\n{self.log.read_text()[-4000:]}")

    def local_env(self) -> dict[str, str]:
        """The generated local secrets (``local.env``)."""
        values = {}
        for line in (self.data_dir / "local.env").read_text().splitlines():
            if line.startswith("export "):
                key, _, value = line.removeprefix("export ").partition("=")
                values[key] = value.strip("'")
        return values

    def token(self) -> str:
        return self.local_env()["AICOLLECT_INTERNAL_TOKEN"]

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


def _started(make: Callable[[int], Stack]) -> Stack:
    # Every process binds port 0 itself, so there is no port to lose to another process and
    # nothing to retry.
    s = make(0)
    try:
        s.wait_up()
    except AssertionError:
        s.stop()
        s._log_file.close()
        raise
    return s


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = _started(lambda attempt: Stack(tmp_path / f"try{attempt}"))
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
    # The same switch as one provider's entry (the README's per-provider example).
    lifted = stack.grpcurl(
        "-d",
        json.dumps(
            {
                "settings": {"provider_kill_switch": {"qbo": False}},
                "update_mask": {"paths": ["provider_kill_switch.qbo"]},
                "actor": "oncall",
                "reason": "drill over",
            }
        ),
        integration,
        "aicollect.integration.v1.AdminService/UpdatePlatformSettings",
    )
    assert lifted.returncode == 0, lifted.stderr
    after = json.loads(lifted.stdout)["settings"]
    assert after["provider_kill_switch"] == {"qbo": False, "xero": False}, lifted.stdout
    assert "qbo_kill_switch" not in after  # false: QBO's switch is off

    _the_dashboard_link_opens_the_reference_page(stack)

    started = time.monotonic()
    assert stack.stop() == 0, stack.log.read_text()[-3000:]
    assert time.monotonic() - started < 30
    for port in stack.ports.values():
        assert not _port_open(port), f"port {port} still open after stop"
    assert "stopped cleanly" in stack.log.read_text()
    assert not (stack.data_dir / "dashboard-link.txt").exists()


def _the_dashboard_link_opens_the_reference_page(stack: Stack) -> None:
    """The banner names the page and the file holding its link; the token is in the file
    (owner-only), never in the output; it is the local tenant's dashboard JWT."""
    path = stack.data_dir / "dashboard-link.txt"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    link = path.read_text().strip()
    page, _, fragment = link.partition("#token=")
    gateway = f"http://127.0.0.1:{stack.ports['gateway']}"
    assert page == f"{gateway}/dashboard/"
    output = stack.log.read_text()
    assert f"dashboard    {page}" in output
    assert fragment not in output
    with urllib.request.urlopen(page, timeout=10) as resp:  # noqa: S310 (loopback)
        assert "Connect QuickBooks" in resp.read().decode()
    panel = urllib.request.Request(  # noqa: S310 (loopback)
        f"{gateway}/v1/integrations/qbo", headers={"Authorization": f"Bearer {fragment}"}
    )
    with urllib.request.urlopen(panel, timeout=10) as resp:  # noqa: S310 (loopback)
        body = json.loads(resp.read())
    assert body["tenant_id"] == "acme"
    assert body["state"] == "CONNECTION_STATE_NOT_CONNECTED"


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    children: dict[int, list[int]] = {}
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat_file.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def test_run_keeps_every_secret_off_every_command_line(stack: Stack) -> None:
    """A command line is visible to every user (ps); the local secrets never appear on one."""
    local = stack.local_env()
    # The client id is public (it is in every authorize URL); the emulator gets it as a flag.
    secrets = {k: local[k] for k in LOCAL_SECRETS if k not in ("QBO_CLIENT_ID", "XERO_CLIENT_ID")}
    cmdlines = []
    for pid in _descendants(stack.proc.pid):
        try:
            cmdlines.append(Path(f"/proc/{pid}/cmdline").read_bytes())
        except OSError:
            continue
    seen = b"\n".join(cmdlines)
    for module in (
        b"emulators.qbo",
        b"emulators.xero",
        b"services.matcher",
        b"services.integration",
        b"gateway",
    ):
        assert module in seen, f"no {module!r} process found under aicollect run"
    assert f"--client-id={local['QBO_CLIENT_ID']}".encode() in seen  # the emulator's own flags
    assert f"--client-id={local['XERO_CLIENT_ID']}".encode() in seen
    for name, value in secrets.items():
        for part in (value, value.rsplit(":", 1)[-1]):  # the token key without its key id
            leaked = part.encode() in seen  # (not in the assertion: pytest would print it)
            assert not leaked, f"{name} is on a command line"


_GET = "aicollect.integration.v1.AdminService/GetPlatformSettings"
_UPDATE = "aicollect.integration.v1.AdminService/UpdatePlatformSettings"
_KILL_SWITCH_ON = {
    "settings": {"qbo_kill_switch": True},
    "update_mask": {"paths": ["qbo_kill_switch"]},
    "actor": "oncall",
    "reason": "drill",
}


def test_run_from_a_private_folder_changes_no_permissions(tmp_path: Path) -> None:
    """A clone in a folder only its owner may enter (root's home, `mktemp -d`) runs, with the
    database server's binaries and data inside that folder, keeps its data from one run to
    the next, and no folder's mode changes."""
    private = Path(tempfile.mkdtemp(prefix="aicollect-private-"))  # 0700, like mktemp -d
    try:
        project = private / "clone"
        site = project / "site"
        spec = importlib.util.find_spec("pgserver")
        assert spec is not None
        assert spec.origin is not None
        wheel = Path(spec.origin).parent
        shutil.copytree(wheel, site / "pgserver", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(wheel.parent / "pgserver.libs", site / "pgserver.libs")
        extra_env = {"PYTHONPATH": str(site)}  # the embedded server now comes from the clone
        found = subprocess.run(
            [
                sys.executable,
                "-c",
                "import importlib.util as u; print(u.find_spec('pgserver').origin)",
            ],
            env={**os.environ, **extra_env},
            capture_output=True,
            text=True,
            check=True,
        )
        assert found.stdout.startswith(str(site)), found.stdout
        watched = {private, *private.parents, ROOT, *ROOT.parents, *Path(sys.executable).parents}
        before = {path: stat.S_IMODE(path.stat().st_mode) for path in watched}
        assert before[private] == 0o700

        kill_switch: list[bool | None] = []

        def in_clone(attempt: int) -> Stack:
            return Stack(
                tmp_path / f"run{len(kill_switch)}-{attempt}",
                cwd=project,
                data_dir=project / ".data",
                extra_env=extra_env,
            )

        for run in ("first", "second"):  # the second run sees what the first one stored
            s = _started(in_clone)
            try:
                integration = f"127.0.0.1:{s.ports['integration']}"
                if run == "first":
                    flipped = s.grpcurl("-d", json.dumps(_KILL_SWITCH_ON), integration, _UPDATE)
                    assert flipped.returncode == 0, flipped.stderr
                read = s.grpcurl(integration, _GET)
                assert read.returncode == 0, read.stderr
                kill_switch.append(json.loads(read.stdout)["settings"].get("qbo_kill_switch"))
            finally:
                code = s.stop()
                s._log_file.close()
            log = s.log.read_text()
            assert code == 0, log[-3000:]
            for runtime in re.findall(r"the database runs in (\S+) and is saved back", log):
                assert not Path(runtime).exists(), f"{runtime} left behind"
        assert kill_switch == [True, True]
        after = {path: stat.S_IMODE(path.stat().st_mode) for path in watched}
        assert after == before
    finally:
        shutil.rmtree(private, ignore_errors=True)

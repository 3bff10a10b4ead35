"""What a newcomer relies on: the compose file validates, processes refuse missing secrets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.helpers.paths import REPO_ROOT as ROOT

BIN = Path(sys.executable).parent


def test_compose_file_is_valid() -> None:
    for args in ([], ["--profile", "emulator"]):
        result = subprocess.run(
            [str(BIN / "docker-compose"), *args, "config", "-q"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr


def _compose_services() -> dict[str, Any]:
    """The services of the compose file (emulator profile on), as Compose resolves them."""
    result = subprocess.run(
        [str(BIN / "docker-compose"), "--profile", "emulator", "config", "--format", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    services: dict[str, Any] = json.loads(result.stdout)["services"]
    return services


def test_compose_lists_every_process_with_health_checks() -> None:
    services = _compose_services()
    assert set(services) == {
        "postgres", "migrate", "integration", "matcher", "gateway", "emulator", "xero-emulator"
    }  # fmt: skip
    for name in ("postgres", "integration", "matcher", "gateway", "emulator", "xero-emulator"):
        assert "healthcheck" in services[name], name
    assert services["emulator"]["profiles"] == ["emulator"]
    assert services["xero-emulator"]["profiles"] == ["emulator"]


def test_only_the_emulator_service_builds_the_image_with_the_emulator() -> None:
    """Every process of the system runs the production image; the emulators (development
    tools, under their profile) run the Dockerfile's ``emulator`` target."""
    services = _compose_services()
    targets = {name: (svc.get("build") or {}).get("target") for name, svc in services.items()}
    assert targets.pop("emulator") == "emulator"
    assert targets.pop("xero-emulator") == "emulator"
    assert targets.pop("postgres") is None  # the postgres image, not built
    assert set(targets.values()) == {"production"}, targets
    assert services["emulator"]["command"][:3] == ["python", "-m", "emulators.qbo"]
    assert services["xero-emulator"]["command"][:3] == ["python", "-m", "emulators.xero"]


def test_missing_secret_stops_the_process_naming_it(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "AICOLLECT_ENV": "production"}
    for module, expected in (
        ("services.integration", "AICOLLECT_TOKEN_KEYS"),
        ("services.matcher", "AICOLLECT_INTERNAL_TOKEN"),
        ("gateway", "AICOLLECT_JWT_SECRET"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", module],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2, (module, result.stderr)
        assert expected in result.stderr, (module, result.stderr)

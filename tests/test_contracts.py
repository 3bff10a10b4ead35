"""The gRPC contracts: committed stubs are fresh, buf lint is clean, services are complete."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aicollect.integration.v1 import admin_service_pb2, integration_service_pb2
from aicollect.matching.v1 import matching_admin_service_pb2, matching_service_pb2
from tests.helpers.paths import REPO_ROOT

GEN_SCRIPT = REPO_ROOT / "scripts" / "gen_protos.py"
GENERATED_PACKAGES = (
    "aicollect/dashboard/v1",
    "aicollect/integration/v1",
    "aicollect/matching/v1",
    "aicollect/type/v1",
)

# Generated descriptors are typed Any: protobuf ships no type stubs for them.
EXPECTED_RPCS: dict[str, tuple[Any, list[str]]] = {
    "aicollect.integration.v1.IntegrationService": (
        integration_service_pb2.DESCRIPTOR,
        [
            "CreateConnectUrl",
            "CompleteConnection",
            "Disconnect",
            "GetConnectionStatus",
            "IngestWebhook",
            "SyncNow",
            "PreviewPlacements",
            "GetPlacementRules",
            "SetPlacementRules",
            "ReportProviderDisconnect",
            "ListPlacementCandidates",
            "ExcludePlacementCandidate",
            "IncludePlacementCandidate",
            "ConfirmPlacementCandidates",
        ],
    ),
    "aicollect.integration.v1.AdminService": (
        admin_service_pb2.DESCRIPTOR,
        [
            "GetTenantSettings",
            "SetTenantSettings",
            "GetPlatformSettings",
            "UpdatePlatformSettings",
            "ListSettingsAuditEvents",
            "ReplayDeadLetters",
            "ListAuditEvents",
        ],
    ),
    "aicollect.matching.v1.MatchingService": (
        matching_service_pb2.DESCRIPTOR,
        [
            "UpsertPlacements",
            "ApplyAccountingPayment",
            "ApplyAccountingInvoice",
            "ApplyAccountingCredit",
            "ApplyAccountingChanges",
            "RecordPortalPayment",
            "GetPlacement",
            "ListPlacements",
            "RestorePlacement",
            "ClearReviewFlag",
            "StreamOutreachEvents",
            "ListAuditEvents",
            "GetReconciliationReport",
            "ListDailyReports",
            "GetDailyReport",
            "PauseOutreach",
            "ResumeOutreach",
            "ListOutreachPauses",
        ],
    ),
    "aicollect.matching.v1.MatchingAdminService": (
        matching_admin_service_pb2.DESCRIPTOR,
        [
            "GetMatchingSettings",
            "UpdateMatchingSettings",
            "GetTenantReportSettings",
            "UpdateTenantReportSettings",
            "RegenerateDailyReport",
        ],
    ),
}

# Field names that would carry a secret. No response message may contain one, at any depth.
_SECRET_NAMES = {"code", "authorization_code", "password"}
_ALLOWED_TOKEN_FIELDS = {"next_page_token", "sync_token"}


def _generated_files(root: Path) -> dict[str, bytes]:
    """The generated files under ``root``: the v1 packages and their parent ``__init__``."""
    files: dict[str, bytes] = {}
    for package in GENERATED_PACKAGES:
        directory = root / package
        if directory.is_dir():
            for path in sorted(directory.iterdir()):
                if path.is_file():
                    files[path.relative_to(root).as_posix()] = path.read_bytes()
        parent_init = directory.parent / "__init__.py"
        if parent_init.is_file():
            files[parent_init.relative_to(root).as_posix()] = parent_init.read_bytes()
    return files


def test_generated_stubs_are_fresh(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(GEN_SCRIPT), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"gen_protos.py failed:\n{result.stdout}\n{result.stderr}"

    expected = _generated_files(tmp_path)
    committed = _generated_files(REPO_ROOT)
    hint = "generated stubs are stale: run `python scripts/gen_protos.py` and commit the result"
    assert sorted(committed) == sorted(expected), hint
    stale = sorted(name for name in expected if committed[name] != expected[name])
    assert not stale, f"{hint} (differs: {', '.join(stale)})"


def test_buf_lint_is_clean() -> None:
    buf = Path(sys.executable).parent / "buf"
    assert buf.exists(), f"buf CLI not found at {buf}; install the dev extras (buf-bin)"
    result = subprocess.run(
        [str(buf), "lint"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"buf lint failed:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("service_name", sorted(EXPECTED_RPCS))
def test_service_has_exactly_the_designed_rpcs(service_name: str) -> None:
    file_descriptor, expected = EXPECTED_RPCS[service_name]
    services = {service.full_name: service for service in file_descriptor.services_by_name.values()}
    assert service_name in services
    assert [method.name for method in services[service_name].methods] == expected


def test_stream_outreach_events_is_the_only_streaming_rpc() -> None:
    streaming = sorted(
        f"{service.name}.{method.name}"
        for file_descriptor, _ in EXPECTED_RPCS.values()
        for service in file_descriptor.services_by_name.values()
        for method in service.methods
        if method.client_streaming or method.server_streaming
    )
    assert streaming == ["MatchingService.StreamOutreachEvents"]
    method = matching_service_pb2.DESCRIPTOR.services_by_name["MatchingService"].methods_by_name[
        "StreamOutreachEvents"
    ]
    assert method.server_streaming
    assert not method.client_streaming


def _secret_fields(message: Any, path: str, seen: set[str]) -> list[str]:
    if message.full_name in seen:
        return []
    seen.add(message.full_name)
    found: list[str] = []
    for field in message.fields:
        name = field.name
        where = f"{path}.{name}"
        if (
            name in _SECRET_NAMES
            or "secret" in name
            or (name.endswith("_token") and name not in _ALLOWED_TOKEN_FIELDS)
        ):
            found.append(where)
        if field.message_type is not None:
            found.extend(_secret_fields(field.message_type, where, seen))
    return found


def test_no_response_message_carries_a_secret() -> None:
    found: list[str] = []
    for file_descriptor, _ in EXPECTED_RPCS.values():
        for service in file_descriptor.services_by_name.values():
            for method in service.methods:
                output = method.output_type
                found.extend(_secret_fields(output, output.name, set()))
    assert not found, f"secret-looking fields in responses: {found}"

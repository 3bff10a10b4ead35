"""AdminService: tenant flag, platform settings (own and the matcher's), audit trail."""

from __future__ import annotations

from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from aicollect.integration.v1 import admin_service_pb2 as apb
from aicollect.integration.v1 import admin_service_pb2_grpc as agrpc
from aicollect.matching.v1 import matching_admin_service_pb2 as mapb
from aicollect.matching.v1 import matching_admin_service_pb2_grpc as magrpc
from aicollect.rpc.client import internal_channel
from aicollect.rpc.errors import error_info
from tests.conftest import INTERNAL_TOKEN, _dsn


def _update(
    actor: str = "ops@ai-collect", reason: str = "incident 42", **values: object
) -> apb.UpdatePlatformSettingsRequest:
    return apb.UpdatePlatformSettingsRequest(
        settings=apb.PlatformSettings(**values),  # type: ignore[arg-type]
        update_mask=FieldMask(paths=list(values)),
        actor=actor,
        reason=reason,
    )


async def test_defaults(integration_channel: grpc.aio.Channel) -> None:
    stub = agrpc.AdminServiceStub(integration_channel)
    settings = (await stub.GetPlatformSettings(apb.GetPlatformSettingsRequest())).settings
    assert settings.qbo_kill_switch is False
    assert settings.oob_amount_tolerance_cents == 1
    assert settings.oob_match_window_minutes == 60
    assert not settings.HasField("update_time")
    tenant = (await stub.GetTenantSettings(apb.GetTenantSettingsRequest(tenant_id="t1"))).settings
    assert tenant.qbo_enabled is False


async def test_kill_switch_flip_is_read_back_and_audited(
    integration_channel: grpc.aio.Channel,
) -> None:
    stub = agrpc.AdminServiceStub(integration_channel)
    reply = await stub.UpdatePlatformSettings(_update(qbo_kill_switch=True))
    assert reply.settings.qbo_kill_switch is True
    again = await stub.GetPlatformSettings(apb.GetPlatformSettingsRequest())
    assert again.settings.qbo_kill_switch is True
    assert again.settings.HasField("update_time")
    # Writing the same value again is a no-op: no second audit record.
    await stub.UpdatePlatformSettings(_update(qbo_kill_switch=True))
    await stub.UpdatePlatformSettings(_update(reason="incident over", qbo_kill_switch=False))
    events = (
        await stub.ListSettingsAuditEvents(
            apb.ListSettingsAuditEventsRequest(setting="qbo_kill_switch")
        )
    ).events
    assert [(e.old_value, e.new_value, e.reason) for e in events] == [
        ("true", "false", "incident over"),
        ("false", "true", "incident 42"),
    ]
    assert all(e.actor == "ops@ai-collect" for e in events)


async def test_matching_settings_live_in_the_matcher(
    integration_channel: grpc.aio.Channel, matcher_addr: str
) -> None:
    stub = agrpc.AdminServiceStub(integration_channel)
    reply = await stub.UpdatePlatformSettings(
        _update(oob_amount_tolerance_cents=5, oob_match_window_minutes=120)
    )
    assert reply.settings.oob_amount_tolerance_cents == 5
    assert reply.settings.oob_match_window_minutes == 120
    assert reply.settings.qbo_kill_switch is False  # not in the mask, untouched
    async with internal_channel(matcher_addr, INTERNAL_TOKEN) as channel:
        owned = await magrpc.MatchingAdminServiceStub(channel).GetMatchingSettings(
            mapb.GetMatchingSettingsRequest()
        )
    assert owned.settings.oob_amount_tolerance_cents == 5
    assert owned.settings.oob_match_window_minutes == 120
    assert owned.settings.update_actor == "ops@ai-collect"
    events = (await stub.ListSettingsAuditEvents(apb.ListSettingsAuditEventsRequest())).events
    assert {(e.setting, e.old_value, e.new_value) for e in events} == {
        ("oob_amount_tolerance_cents", "1", "5"),
        ("oob_match_window_minutes", "60", "120"),
    }


async def test_a_setting_s_history_from_before_its_rename_is_listed_under_its_name(
    integration_channel: grpc.aio.Channel, database_url: str
) -> None:
    """Changes recorded as ``qbo_oob_amount_tolerance_cents`` (its name before matching
    became provider-neutral) stay in the history of ``oob_amount_tolerance_cents``."""
    conn = await asyncpg.connect(_dsn(database_url))
    try:
        await conn.execute(
            "INSERT INTO integration.audit_events (tenant_id, subject_type, subject_id, action,"
            " actor, reason, details) VALUES (NULL, 'matching_setting',"
            " 'qbo_oob_amount_tolerance_cents', 'setting.changed', 'ops', 'rounding',"
            """ '{"key": "qbo_oob_amount_tolerance_cents", "old": 1, "new": 2}')"""
        )
    finally:
        await conn.close()
    stub = agrpc.AdminServiceStub(integration_channel)
    await stub.UpdatePlatformSettings(_update(oob_amount_tolerance_cents=5))
    events = (
        await stub.ListSettingsAuditEvents(
            apb.ListSettingsAuditEventsRequest(setting="oob_amount_tolerance_cents")
        )
    ).events
    assert [(e.setting, e.old_value, e.new_value) for e in events] == [
        ("oob_amount_tolerance_cents", "1", "5"),
        ("oob_amount_tolerance_cents", "1", "2"),
    ]


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (_update(actor="", qbo_kill_switch=True), "actor"),
        (_update(reason="  ", qbo_kill_switch=True), "reason"),
        (apb.UpdatePlatformSettingsRequest(actor="a", reason="r"), "update_mask"),
        (_update(update_time=None), "update_mask"),
        (
            apb.UpdatePlatformSettingsRequest(
                update_mask=FieldMask(paths=["*"]), actor="a", reason="r"
            ),
            "update_mask",
        ),
        (
            _update(qbo_kill_switch=True, oob_amount_tolerance_cents=-1),
            "oob_amount_tolerance_cents",
        ),
        (_update(oob_match_window_minutes=0), "oob_match_window_minutes"),
    ],
)
async def test_bad_update_is_refused_and_changes_nothing(
    integration_channel: grpc.aio.Channel, request_: apb.UpdatePlatformSettingsRequest, field: str
) -> None:
    stub = agrpc.AdminServiceStub(integration_channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.UpdatePlatformSettings(request_)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (info.value.details() or "")
    settings = (await stub.GetPlatformSettings(apb.GetPlatformSettingsRequest())).settings
    assert (settings.qbo_kill_switch, settings.oob_amount_tolerance_cents) == (False, 1)
    assert settings.oob_match_window_minutes == 60
    assert not (await stub.ListSettingsAuditEvents(apb.ListSettingsAuditEventsRequest())).events


async def test_tenant_flag_set_read_audited(integration_channel: grpc.aio.Channel) -> None:
    stub = agrpc.AdminServiceStub(integration_channel)
    set_reply = await stub.SetTenantSettings(
        apb.SetTenantSettingsRequest(
            tenant_id="acme", qbo_enabled=True, actor="support@ai-collect", reason="beta pilot"
        )
    )
    assert set_reply.settings.qbo_enabled is True
    got = await stub.GetTenantSettings(apb.GetTenantSettingsRequest(tenant_id="acme"))
    assert got.settings.qbo_enabled is True
    assert got.settings.HasField("update_time")
    other = await stub.GetTenantSettings(apb.GetTenantSettingsRequest(tenant_id="other"))
    assert other.settings.qbo_enabled is False
    events = (
        await stub.ListSettingsAuditEvents(apb.ListSettingsAuditEventsRequest(tenant_id="acme"))
    ).events
    assert [(e.setting, e.new_value, e.reason) for e in events] == [
        ("qbo_enabled", "true", "beta pilot")
    ]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetTenantSettings(apb.GetTenantSettingsRequest(tenant_id=""))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_audit_pagination(integration_channel: grpc.aio.Channel) -> None:
    stub = agrpc.AdminServiceStub(integration_channel)
    for i in range(5):
        await stub.SetTenantSettings(
            apb.SetTenantSettingsRequest(
                tenant_id=f"t{i}", qbo_enabled=True, actor="a", reason=f"r{i}"
            )
        )
    seen: list[str] = []
    token = ""
    while True:
        page = await stub.ListSettingsAuditEvents(
            apb.ListSettingsAuditEventsRequest(page_size=2, page_token=token)
        )
        assert len(page.events) <= 2
        seen += [e.reason for e in page.events]
        token = page.next_page_token
        if not token:
            break
    assert seen == ["r4", "r3", "r2", "r1", "r0"]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ListSettingsAuditEvents(
            apb.ListSettingsAuditEventsRequest(page_token="not-a-token")
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_matcher_down_is_unavailable_not_stale(
    engine: Any, emulator: Any, refused_addr: str
) -> None:
    import aiohttp

    from services.integration.deps import IntegrationDeps
    from services.integration.server import build_server
    from tests.conftest import integration_settings

    # An integration server whose matcher address answers nothing.
    dead = internal_channel(refused_addr, INTERNAL_TOKEN)
    http = aiohttp.ClientSession()
    deps = IntegrationDeps.create(integration_settings(emulator.url), engine, http, dead)
    server = build_server(deps, address="127.0.0.1:0", internal_token=INTERNAL_TOKEN)
    await server.start()
    try:
        async with internal_channel(f"127.0.0.1:{server.port}", INTERNAL_TOKEN) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await agrpc.AdminServiceStub(channel).GetPlatformSettings(
                    apb.GetPlatformSettingsRequest()
                )
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        detail = error_info(info.value)
        assert detail is not None
        assert detail.reason == "MATCHER_UNAVAILABLE"
    finally:
        await server.stop(None)
        await dead.close(None)
        await http.close()

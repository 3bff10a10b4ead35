"""The Xero emulator's control API housekeeping: index, settings, reset, apps."""

from __future__ import annotations

from tests.emulators.xero.conftest import CLIENT_ID, Emulator


async def test_index_settings_and_reset(emulator: Emulator) -> None:
    index = await emulator.control("GET", "/")
    assert index["emulator"] == "Xero emulator"
    assert "POST /_emulator/apps/{client_id}/intent-to-receive" in index["endpoints"]
    changed = await emulator.control(
        "PATCH", "/settings", {"payment_webhooks": False, "if_modified_since_other": "reject"}
    )
    assert changed["payment_webhooks"] is False
    assert changed["if_modified_since_other"] == "reject"
    bad_settings = (
        {"payment_webhooks": "no"},
        {"if_modified_since_other": "maybe"},
        {"access_token_ttl": 0},
        {"disconnected_tenant_status": 500},
        {"bogus": 1},
    )
    for bad in bad_settings:
        await emulator.control("PATCH", "/settings", bad, expect=400)
    tenant = await emulator.organisation()
    await emulator.connect([tenant])
    assert (await emulator.control("GET", "/stats"))["token_calls"] == {"authorization_code": 1}
    await emulator.control("POST", "/reset")
    assert (await emulator.control("GET", "/organisations"))["organisations"] == []
    assert (await emulator.control("GET", "/connections"))["connections"] == []


async def test_apps_are_registered_changed_and_deleted(emulator: Emulator) -> None:
    created = await emulator.control(
        "POST", "/apps", {"client_id": "second", "redirect_uris": ["http://127.0.0.1:9/cb"]},
        expect=201,
    )  # fmt: skip
    assert created["webhook_key"]
    assert created["webhook_categories"] == ["INVOICE", "CONTACT", "CREDITNOTE"]
    patched = await emulator.control("PATCH", "/apps/second", {"scope_style": "granular"})
    assert patched["scope_style"] == "granular"
    assert patched["redirect_uris"] == ["http://127.0.0.1:9/cb"]
    await emulator.control("PATCH", "/apps/second", {"scope_style": "new"}, expect=400)
    tenant = await emulator.organisation()
    await emulator.connect([tenant])
    await emulator.control("DELETE", f"/apps/{CLIENT_ID}")
    await emulator.control("GET", f"/apps/{CLIENT_ID}", expect=404)
    assert (await emulator.control("GET", "/connections"))["connections"] == []

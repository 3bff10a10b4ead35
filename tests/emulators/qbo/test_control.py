"""The control API's own housekeeping: index, apps, settings, reset, less common actions."""

from __future__ import annotations

from tests.emulators.qbo.conftest import CLIENT_ID, Emulator


async def test_index_lists_control_endpoints(emulator: Emulator) -> None:
    index = await emulator.control("GET", "/")
    assert "POST /_emulator/companies/{realm}/payments" in index["endpoints"]
    assert "PUT /_emulator/faults" in index["endpoints"]


async def test_apps_register_update_and_reset(emulator: Emulator) -> None:
    created = await emulator.control(
        "POST", "/apps", {"redirect_uris": ["http://127.0.0.1:9/x"], "webhook_format": "legacy"},
        expect=201,
    )  # fmt: skip
    assert created["client_id"]
    assert created["client_secret"]
    assert created["verifier_token"]
    updated = await emulator.control(
        "PATCH", f"/apps/{created['client_id']}", {"webhook_url": "http://127.0.0.1:9/hook"}
    )
    assert updated["webhook_format"] == "legacy"
    assert updated["webhook_url"] == "http://127.0.0.1:9/hook"
    await emulator.control("POST", "/apps", {"webhook_format": "xml"}, expect=400)
    realm = await emulator.company(customers=3, invoices=5)
    await emulator.connect(realm)
    await emulator.control("POST", "/reset")
    apps = await emulator.control("GET", "/apps")
    assert [a["client_id"] for a in apps["apps"]] == [CLIENT_ID]
    assert (await emulator.control("GET", "/companies"))["companies"] == []
    assert (await emulator.control("GET", "/grants"))["grants"] == []


async def test_settings_and_clock(emulator: Emulator) -> None:
    settings = await emulator.control("PATCH", "/settings", {"access_token_ttl": 60})
    assert settings["access_token_ttl"] == 60
    await emulator.control("PATCH", "/settings", {"bogus": 1}, expect=400)
    realm = await emulator.company()
    tokens = await emulator.connect(realm)
    assert tokens.body["expires_in"] == 60
    await emulator.control("POST", "/clock", {"advance_seconds": 61})
    assert (await emulator.api(tokens, f"companyinfo/{realm}"))[0] == 401
    await emulator.control("POST", "/clock", {"advance_seconds": -1}, expect=400)


async def test_pinned_today_and_timezone(emulator: Emulator) -> None:
    realm = await emulator.company(today="2026-02-28", timezone="Pacific/Auckland")
    summary = await emulator.control("GET", f"/companies/{realm}")
    assert (summary["today"], summary["timezone"]) == ("2026-02-28", "Pacific/Auckland")
    moved = await emulator.control("PATCH", f"/companies/{realm}", {"today": "2026-03-31"})
    assert moved["today"] == "2026-03-31"
    await emulator.control("POST", "/companies", {"timezone": "Mars/Olympus"}, expect=400)


async def test_credit_memo_void_delete_and_customer_delete(emulator: Emulator) -> None:
    realm = await emulator.company()
    base = f"/companies/{realm}"
    cust = (await emulator.control("POST", f"{base}/customers", {"display_name": "Cm"}))["Customer"]
    inv = (
        await emulator.control(
            "POST", f"{base}/invoices", {"customer_id": cust["Id"], "amount": 50}
        )
    )["Invoice"]
    memo = (
        await emulator.control(
            "POST", f"{base}/credit-memos", {"customer_id": cust["Id"], "amount": 20}
        )
    )["CreditMemo"]
    applied = (
        await emulator.control(
            "POST", f"{base}/credit-memos/{memo['Id']}/apply", {"invoice_id": inv["Id"]}
        )
    )["Payment"]
    assert applied["Line"][0]["Amount"] == 20.0  # all the credit, when no amount is given
    await emulator.control("POST", f"{base}/credit-memos/{memo['Id']}/void", expect=400)
    await emulator.control("DELETE", f"{base}/payments/{applied['Id']}")
    voided = (await emulator.control("POST", f"{base}/credit-memos/{memo['Id']}/void"))[
        "CreditMemo"
    ]
    assert (voided["TotalAmt"], voided["RemainingCredit"], voided["PrivateNote"]) == (
        0,
        0,
        "Voided",
    )
    other = (
        await emulator.control(
            "POST", f"{base}/credit-memos", {"customer_id": cust["Id"], "amount": 5}
        )
    )["CreditMemo"]
    await emulator.control("DELETE", f"{base}/credit-memos/{other['Id']}")
    # A customer with an open balance can't be made inactive; once settled it can.
    await emulator.control("DELETE", f"{base}/customers/{cust['Id']}", expect=400)
    await emulator.control("POST", f"{base}/invoices/{inv['Id']}/void")
    gone = (await emulator.control("DELETE", f"{base}/customers/{cust['Id']}"))["Customer"]
    assert gone["Active"] is False
    assert gone["DisplayName"] == "Cm (deleted)"
    await emulator.control("GET", f"{base}/invoices/424242", expect=404)

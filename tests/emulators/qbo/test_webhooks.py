"""Signed webhook delivery: formats, batching, retries, head-of-line blocking, faults."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from typing import Any

import pytest

from emulators.qbo import verify
from emulators.qbo.config import INTUIT_RETRY_SCHEDULE
from tests.emulators.qbo.conftest import CLIENT_ID, REDIRECT_URI, VERIFIER, Emulator
from tests.helpers.sink import WebhookSink


async def _hook_up(emulator: Emulator, sink: WebhookSink, **company: Any) -> str:
    await emulator.control("PATCH", f"/apps/{CLIENT_ID}", {"webhook_url": sink.url})
    realm = await emulator.company(**company)
    await emulator.connect(realm)
    return realm


def _events(sink: WebhookSink) -> list[dict[str, Any]]:
    return [event for r in sink.received for event in json.loads(r.body)]


async def test_payment_scenario_delivers_signed_cloudevents(
    emulator: Emulator, webhook_sink: WebhookSink
) -> None:
    realm = await _hook_up(emulator, webhook_sink, customers=100, invoices=1000, seed=11)
    tokens = await emulator.connect(realm)
    _, body = await emulator.query(tokens, "SELECT * FROM Invoice WHERE Balance > '0' MAXRESULTS 1")
    invoice = body["QueryResponse"]["Invoice"][0]
    paid = await emulator.control(
        "POST",
        f"/companies/{realm}/payments",
        {"lines": [{"invoice_id": invoice["Id"], "amount": invoice["Balance"]}]},
    )
    payment_id = paid["Payment"]["Id"]
    await emulator.control("POST", "/webhooks/wait", {"timeout": 5})
    assert webhook_sink.received
    for request in webhook_sink.received:
        assert request.headers["Content-Type"] == "application/cloudevents+json"
        assert verify(VERIFIER, request.body, request.headers["intuit-signature"])
        assert not verify("another-token", request.body, request.headers["intuit-signature"])
    events = _events(webhook_sink)
    by_type = {e["type"]: e for e in events}
    created = by_type["qbo.payment.created.v1"]
    assert created["intuitentityid"] == payment_id
    assert created["intuitaccountid"] == realm
    assert created["specversion"] == "1.0"
    assert created["source"].startswith("intuit.")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", created["time"])
    updated = by_type["qbo.invoice.updated.v1"]
    assert updated["intuitentityid"] == invoice["Id"]
    assert len({e["id"] for e in events}) == len(events)
    # What the webhook points at is what the API now says.
    status, read, _ = await emulator.api(tokens, f"invoice/{invoice['Id']}")
    assert (status, read["Invoice"]["Balance"]) == (200, 0)
    log = await emulator.control("GET", f"/deliveries?client_id={CLIENT_ID}")
    assert log["deliveries"][-1]["status"] == 200
    assert created["id"] in {i for d in log["deliveries"] for i in d["event_ids"]}


async def test_legacy_format_per_app(emulator: Emulator, webhook_sink: WebhookSink) -> None:
    realm = await _hook_up(emulator, webhook_sink)
    await emulator.control(
        "POST",
        "/apps",
        {"client_id": "legacy-app", "client_secret": "s2", "redirect_uris": [REDIRECT_URI],
         "webhook_url": webhook_sink.url + "?app=legacy", "verifier_token": "legacy-verifier",
         "webhook_format": "legacy"},
        expect=201,
    )  # fmt: skip
    await emulator.connect(realm, client_id="legacy-app")
    created = await emulator.control(
        "POST", f"/companies/{realm}/customers", {"display_name": "Webhook Wanda"}
    )
    await emulator.control("POST", "/webhooks/wait")
    legacy = [r for r in webhook_sink.received if b"eventNotifications" in r.body]
    modern = [r for r in webhook_sink.received if b"specversion" in r.body]
    assert len(legacy) == len(modern) == 1
    assert legacy[0].headers["Content-Type"] == "application/json"
    assert verify("legacy-verifier", legacy[0].body, legacy[0].headers["intuit-signature"])
    notification = json.loads(legacy[0].body)["eventNotifications"][0]
    assert notification["realmId"] == realm
    entity = notification["dataChangeEvent"]["entities"][0]
    assert {k: entity[k] for k in ("name", "id", "operation")} == {
        "name": "Customer",
        "id": created["Customer"]["Id"],
        "operation": "Create",
    }
    assert entity["lastUpdated"].endswith("Z")


async def test_void_and_delete_operations(emulator: Emulator, webhook_sink: WebhookSink) -> None:
    realm = await _hook_up(emulator, webhook_sink)
    company = f"/companies/{realm}"
    cust = (await emulator.control("POST", f"{company}/customers", {"display_name": "V"}))[
        "Customer"
    ]
    inv = (
        await emulator.control(
            "POST", f"{company}/invoices", {"customer_id": cust["Id"], "amount": "9.00"}
        )
    )["Invoice"]
    pay = (
        await emulator.control(
            "POST", f"{company}/payments", {"lines": [{"invoice_id": inv["Id"], "amount": "9.00"}]}
        )
    )["Payment"]
    await emulator.control("POST", f"{company}/payments/{pay['Id']}/void")
    await emulator.control("POST", f"{company}/invoices/{inv['Id']}/void")
    await emulator.control("DELETE", f"{company}/payments/{pay['Id']}")
    await emulator.control("POST", "/webhooks/wait")
    types = [e["type"] for e in _events(webhook_sink)]
    assert types == [
        "qbo.customer.created.v1",
        "qbo.invoice.created.v1",
        "qbo.payment.created.v1",
        "qbo.invoice.updated.v1",
        "qbo.payment.voided.v1",
        "qbo.invoice.updated.v1",
        "qbo.invoice.voided.v1",
        "qbo.payment.deleted.v1",
    ]


async def test_only_connected_apps_get_events(
    emulator: Emulator, webhook_sink: WebhookSink
) -> None:
    await emulator.control("PATCH", f"/apps/{CLIENT_ID}", {"webhook_url": webhook_sink.url})
    realm = await emulator.company()
    await emulator.control("POST", f"/companies/{realm}/customers", {"display_name": "Before"})
    await emulator.connect(realm)
    await emulator.control("POST", f"/companies/{realm}/customers", {"display_name": "During"})
    await emulator.control("POST", "/webhooks/wait")
    await emulator.control("POST", f"/companies/{realm}/disconnect", {})
    await emulator.control("POST", f"/companies/{realm}/customers", {"display_name": "After"})
    await emulator.control("POST", "/webhooks/wait")
    assert [e["intuitentityid"] for e in _events(webhook_sink)] == ["2"]


async def test_batch_window_and_100_events_per_post(
    emulator: Emulator, webhook_sink: WebhookSink
) -> None:
    realm = await _hook_up(emulator, webhook_sink)
    await emulator.control("PATCH", "/settings", {"webhook_batch_window": 0.2})
    company = emulator.state.companies[realm]
    for n in range(250):
        company.add_customer(display_name=f"Bulk {n}")
    await emulator.control("POST", "/webhooks/wait")
    sizes = [len(json.loads(r.body)) for r in webhook_sink.received]
    assert sizes == [100, 100, 50]
    ids = [int(e["intuitentityid"]) for e in _events(webhook_sink)]
    assert ids == sorted(ids)


async def test_retry_schedule_and_head_of_line(
    emulator: Emulator, webhook_sink: WebhookSink
) -> None:
    scale = 0.002  # 10 s -> 20 ms, 20 s -> 40 ms, 30 s -> 60 ms
    realm = await _hook_up(emulator, webhook_sink)
    await emulator.control("PATCH", "/settings", {"webhook_time_scale": scale})
    webhook_sink.respond = lambda n: 500 if n < 3 else 200
    company = f"/companies/{realm}"
    await emulator.control("POST", f"{company}/customers", {"display_name": "First"})
    await webhook_sink.wait_for(1)
    await emulator.control("POST", f"{company}/customers", {"display_name": "Second"})
    await emulator.control("POST", "/webhooks/wait")
    received = webhook_sink.received
    assert len(received) == 5
    # The first event is retried with the same body until acknowledged ...
    assert len({r.body for r in received[:4]}) == 1
    assert [e["intuitentityid"] for e in json.loads(received[0].body)] == ["1"]
    # ... and the second waits behind it.
    assert [e["intuitentityid"] for e in json.loads(received[4].body)] == ["2"]
    gaps = [b.at - a.at for a, b in itertools.pairwise(received[:4])]
    for gap, expected in zip(gaps, (s * scale for s in INTUIT_RETRY_SCHEDULE), strict=False):
        assert expected * 0.9 <= gap < expected + 0.25
    log = (await emulator.control("GET", "/deliveries"))["deliveries"]
    assert [(d["attempt"], d["status"]) for d in log] == [
        (1, 500),
        (2, 500),
        (3, 500),
        (4, 200),
        (1, 200),
    ]


async def test_slow_answer_counts_as_failure(emulator: Emulator, webhook_sink: WebhookSink) -> None:
    realm = await _hook_up(emulator, webhook_sink)
    await emulator.control(
        "PATCH", "/settings", {"webhook_timeout": 0.2, "webhook_time_scale": 0.001}
    )
    webhook_sink.delay = lambda n: 0.6 if n == 0 else 0.0
    await emulator.control("POST", f"/companies/{realm}/customers", {"display_name": "Slowpoke"})
    await emulator.control("POST", "/webhooks/wait")
    log = (await emulator.control("GET", "/deliveries"))["deliveries"]
    assert log[0]["status"] is None
    assert "no answer" in log[0]["error"]
    assert log[1]["status"] == 200
    assert log[0]["event_ids"] == log[1]["event_ids"]


@pytest.mark.parametrize(
    ("faults", "expect"),
    [
        ({"webhook_drop_rate": 1.0}, "dropped"),
        ({"webhook_duplicate_rate": 1.0}, "duplicated"),
        ({"webhook_delay_rate": 1.0, "webhook_delay_seconds": 0.15}, "delayed"),
    ],
)
async def test_webhook_faults(
    emulator: Emulator, webhook_sink: WebhookSink, faults: dict[str, Any], expect: str
) -> None:
    realm = await _hook_up(emulator, webhook_sink)
    await emulator.control("PUT", "/faults", faults)
    started = asyncio.get_running_loop().time()
    await emulator.control("POST", f"/companies/{realm}/customers", {"display_name": "Faulty"})
    await emulator.control("POST", "/webhooks/wait")
    events = _events(webhook_sink)
    if expect == "dropped":
        assert events == []
        dropped = (await emulator.control("GET", "/deliveries"))["dropped"]
        assert dropped[0]["reason"] == "dropped by fault injection"
    elif expect == "duplicated":
        assert [e["intuitentityid"] for e in events] == ["1", "1"]
        assert events[0]["id"] != events[1]["id"]
    else:
        assert len(events) == 1
        assert webhook_sink.received[0].at - started >= 0.15


async def test_reorder_fault_swaps_queued_events(
    emulator: Emulator, webhook_sink: WebhookSink
) -> None:
    realm = await _hook_up(emulator, webhook_sink)
    await emulator.control("PATCH", "/settings", {"webhook_batch_window": 0.1})
    await emulator.control("PUT", "/faults", {"webhook_reorder_rate": 1.0})
    company = emulator.state.companies[realm]
    company.add_customer(display_name="A")
    company.add_customer(display_name="B")
    await emulator.control("POST", "/webhooks/wait")
    assert [e["intuitentityid"] for e in _events(webhook_sink)] == ["2", "1"]


def test_event_ids_stay_unique_when_the_dice_are_reset(emulator: Emulator) -> None:
    """Clearing the faults reseeds the dice, so the same random bits come again; the
    lifetime counter must still make every id new. It used to share bits with the UUID's
    version field, so ids 4,096 apart repeated, and a receiver deduplicating by event id
    (as ours does) acknowledged a real change and dropped it."""
    hooks = emulator.state.webhooks
    seen: set[str] = set()
    for _ in range(3):
        hooks.faults.reset()
        seen.update(hooks.new_id() for _ in range(4096))
    assert len(seen) == 3 * 4096

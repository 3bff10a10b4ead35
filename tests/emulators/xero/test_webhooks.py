"""Xero's signed webhooks and the Intent to Receive, delivered to a real endpoint."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from emulators.xero import verify
from tests.emulators.xero.conftest import CLIENT_ID, WEBHOOK_KEY, Emulator, make_config
from tests.helpers.sink import WebhookSink


async def _hooked(emulator: Emulator, sink: WebhookSink) -> str:
    await emulator.control("PATCH", f"/apps/{CLIENT_ID}", {"webhook_url": sink.url})
    tenant = await emulator.organisation()
    await emulator.connect([tenant])
    return tenant


def _events(sink: WebhookSink) -> list[dict[str, Any]]:
    return [e for r in sink.received for e in json.loads(r.body)["events"]]


async def test_invoice_contact_and_credit_note_events_are_signed(
    emulator: Emulator, webhook_sink: WebhookSink
) -> None:
    tenant = await _hooked(emulator, webhook_sink)
    base = f"/organisations/{tenant}"
    contact = (await emulator.control("POST", f"{base}/contacts", {"name": "Ada"}))["Contacts"][0]
    invoice = (
        await emulator.control(
            "POST", f"{base}/invoices", {"contact_id": contact["ContactID"], "amount": "10"}
        )
    )["Invoices"][0]
    await emulator.control(
        "POST", f"{base}/credit-notes", {"contact_id": contact["ContactID"], "amount": "4"}
    )
    await emulator.control("POST", "/webhooks/wait", {"timeout": 30})
    events = _events(webhook_sink)
    assert [(e["eventCategory"], e["eventType"]) for e in events] == [
        ("CONTACT", "CREATE"),
        ("INVOICE", "CREATE"),
        ("CREDITNOTE", "CREATE"),
    ]
    first = webhook_sink.received[0]
    assert verify(WEBHOOK_KEY, first.body, first.headers["x-xero-signature"])
    payload = json.loads(first.body)
    assert payload["firstEventSequence"] == 1
    assert payload["entropy"]
    event = events[1]
    assert event["resourceId"] == invoice["InvoiceID"]
    assert event["resourceUrl"].endswith(f"/api.xro/2.0/Invoices/{invoice['InvoiceID']}")
    assert event["tenantId"] == tenant
    assert event["tenantType"] == "ORGANISATION"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", event["eventDateUtc"])
    assert events[2]["data"] == {"Type": "ACCRECCREDIT", "Status": "AUTHORISED"}


@pytest.mark.parametrize(
    ("emulator_config", "sent"),
    [(make_config(payment_webhooks=True), True), (make_config(payment_webhooks=False), False)],
)
async def test_a_payment_updates_the_invoice_webhook_is_a_setting(
    emulator: Emulator, webhook_sink: WebhookSink, sent: bool
) -> None:
    """Xero sends no payment events; whether a payment sends INVOICE UPDATE is UNCONFIRMED."""
    tenant = await _hooked(emulator, webhook_sink)
    base = f"/organisations/{tenant}"
    contact = (await emulator.control("POST", f"{base}/contacts", {"name": "Ada"}))["Contacts"][0]
    invoice = (
        await emulator.control(
            "POST", f"{base}/invoices", {"contact_id": contact["ContactID"], "amount": "10"}
        )
    )["Invoices"][0]
    await emulator.control("POST", "/webhooks/wait", {"timeout": 30})
    before = len(_events(webhook_sink))
    await emulator.control("POST", f"{base}/payments", {"invoice_id": invoice["InvoiceID"]})
    await emulator.control("POST", "/webhooks/wait", {"timeout": 30})
    after = _events(webhook_sink)[before:]
    expected = [("INVOICE", "UPDATE", invoice["InvoiceID"])] if sent else []
    assert [(e["eventCategory"], e["eventType"], e["resourceId"]) for e in after] == expected


def _itr_answers(sink: WebhookSink, correct: bool) -> None:
    def respond(n: int) -> int:
        received = sink.received[n]
        if not correct:
            return 200
        ok = verify(WEBHOOK_KEY, received.body, received.headers.get("x-xero-signature"))
        return 200 if ok else 401

    sink.respond = respond


async def test_intent_to_receive_passes_only_an_endpoint_that_checks_signatures(
    emulator: Emulator, webhook_sink: WebhookSink
) -> None:
    tenant = await _hooked(emulator, webhook_sink)
    _itr_answers(webhook_sink, correct=False)
    record = await emulator.control("POST", f"/apps/{CLIENT_ID}/intent-to-receive", {})
    assert record["passed"] is False
    assert {a["correctly_signed"] for a in record["attempts"]} == {True, False}
    assert all(json.loads(r.body)["events"] == [] for r in webhook_sink.received)
    assert (await emulator.control("GET", f"/apps/{CLIENT_ID}"))["webhook_status"] == "FAILED"
    # A failed webhook receives nothing.
    count = len(webhook_sink.received)
    await emulator.control("POST", f"/organisations/{tenant}/contacts", {"name": "Ada"})
    await emulator.control("POST", "/webhooks/wait", {"timeout": 30})
    assert len(webhook_sink.received) == count
    _itr_answers(webhook_sink, correct=True)
    record = await emulator.control("POST", f"/apps/{CLIENT_ID}/intent-to-receive", {})
    assert record["passed"] is True
    assert [a["status"] for a in record["attempts"]] == [a["expected"] for a in record["attempts"]]
    assert (await emulator.control("GET", f"/apps/{CLIENT_ID}"))["webhook_status"] == "OK"
    handshakes = (await emulator.control("GET", "/intent-to-receive"))["intent_to_receive"]
    assert [h["passed"] for h in handshakes] == [False, True]


@pytest.mark.parametrize(
    ("emulator_config", "replayed"),
    [
        (make_config(webhook_give_up_after=60.0), False),
        (make_config(webhook_give_up_after=60.0, webhook_replay_on_reenable=True), True),
    ],
)
async def test_a_failing_endpoint_gets_its_webhook_disabled(
    emulator: Emulator, webhook_sink: WebhookSink, replayed: bool
) -> None:
    """After retrying for the (scaled) give-up time the webhook is disabled; re-enabling
    runs the Intent to Receive again; replaying held events is UNCONFIRMED: a setting."""
    tenant = await _hooked(emulator, webhook_sink)
    webhook_sink.respond = lambda _n: 500
    await emulator.control("POST", f"/organisations/{tenant}/contacts", {"name": "Ada"})
    await emulator.control("POST", "/webhooks/wait", {"timeout": 30})
    app = await emulator.control("GET", f"/apps/{CLIENT_ID}")
    assert app["webhook_status"] == "DISABLED"
    assert len(webhook_sink.received) >= 2  # retried before giving up
    _itr_answers(webhook_sink, correct=True)
    before = len(webhook_sink.received)
    enabled = await emulator.control("POST", f"/apps/{CLIENT_ID}/webhook/enable", {})
    assert enabled["passed"] is True
    assert enabled["held_events"] == 1
    await emulator.control("POST", "/webhooks/wait", {"timeout": 30})
    later = [e for r in webhook_sink.received[before:] for e in json.loads(r.body)["events"]]
    assert bool(later) is replayed


async def test_dropped_webhooks_are_listed(emulator: Emulator, webhook_sink: WebhookSink) -> None:
    tenant = await _hooked(emulator, webhook_sink)
    await emulator.control("PUT", "/faults", {"webhook_drop_rate": 1.0})
    await emulator.control("POST", f"/organisations/{tenant}/contacts", {"name": "Ada"})
    await emulator.control("POST", "/webhooks/wait", {"timeout": 30})
    assert webhook_sink.received == []
    dropped = (await emulator.control("GET", "/deliveries"))["dropped"]
    assert dropped[0]["reason"] == "dropped by fault injection"
    assert dropped[0]["category"] == "CONTACT"


async def test_organisations_not_connected_send_nothing(
    emulator: Emulator, webhook_sink: WebhookSink
) -> None:
    await _hooked(emulator, webhook_sink)
    stranger = await emulator.organisation(name="Not connected")
    await emulator.control("POST", f"/organisations/{stranger}/contacts", {"name": "Ada"})
    await emulator.control("POST", "/webhooks/wait", {"timeout": 30})
    assert webhook_sink.received == []

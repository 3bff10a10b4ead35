"""Xero's webhooks: the payload, ``x-xero-signature`` and the Intent to Receive handshake.

One URL and one signing key per app, for every organisation connected to it.  A POST
carries ``{"events": [...], "firstEventSequence", "lastEventSequence", "entropy"}``; each
event names the tenant, the resource and CREATE or UPDATE, never the resource's body.
The body is signed: ``x-xero-signature = base64(HMAC-SHA256(webhook key, raw body))``.
Only a 200 within 5 s counts; failures are retried with decreasing frequency for 24 hours
(scaled by ``webhook_time_scale``), after which the app's webhook is disabled.

Before a webhook is live, Xero runs the Intent to Receive: a few POSTs with no events, some
correctly signed and some not; the endpoint must answer 200 to every correct one and 401 to
every other.  :meth:`XeroWebhooks.intent_to_receive` runs it and records the outcome.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from emulators.common.clock import Clock
from emulators.common.faults import FaultBox
from emulators.common.webhooks import (
    Dispatcher,
    Event,
    Timing,
    hmac_sha256_b64,
    utc_millis,
    verify_hmac_sha256_b64,
)
from emulators.xero.config import EmulatorConfig
from emulators.xero.dates import event_date
from emulators.xero.oauth import App, OAuthState

API_BASE = "https://api.xero.com/api.xro/2.0"
_RESOURCE_PATHS = {"INVOICE": "Invoices", "CONTACT": "Contacts", "CREDITNOTE": "CreditNotes"}


def sign(webhook_key: str, body: bytes) -> str:
    """``x-xero-signature``: base64 HMAC-SHA256 of the raw body, keyed by the webhook key."""
    return hmac_sha256_b64(webhook_key, body)


def verify(webhook_key: str, body: bytes, signature: str | None) -> bool:
    """Constant-time check of an ``x-xero-signature`` header."""
    return verify_hmac_sha256_b64(webhook_key, body, signature)


@dataclass(slots=True)
class Change:
    tenant_id: str
    category: str  # INVOICE | CONTACT | CREDITNOTE
    operation: str  # CREATE | UPDATE
    resource_id: str
    at: float
    data: dict[str, Any] | None = None

    def event(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "resourceUrl": f"{API_BASE}/{_RESOURCE_PATHS[self.category]}/{self.resource_id}",
            "resourceId": self.resource_id,
            "eventDateUtc": event_date(self.at),
            "eventType": self.operation,
            "eventCategory": self.category,
            "tenantId": self.tenant_id,
            "tenantType": "ORGANISATION",
        }
        if self.data is not None:
            out["data"] = self.data
        return out


def payload(events: list[dict[str, Any]], first: int, last: int) -> bytes:
    body = {
        "events": events,
        "firstEventSequence": first,
        "lastEventSequence": last,
        "entropy": secrets.token_urlsafe(15).upper(),
    }
    return json.dumps(body, separators=(",", ":")).encode()


class XeroChannel:
    def __init__(self, clock: Clock, oauth: OAuthState) -> None:
        self.clock = clock
        self.oauth = oauth  # replaced on reset
        self.disabled_at: dict[str, str] = {}

    def webhook_url(self, client_id: str) -> str | None:
        app = self.oauth.apps.get(client_id)
        if app is None or app.webhook_status != "OK":
            return None
        return app.webhook_url

    def connected(self, client_id: str, change: Change) -> bool:
        return client_id in self.oauth.connected_apps(change.tenant_id)

    def render(self, client_id: str, events: list[Event[Change]]) -> tuple[bytes, dict[str, str]]:
        app = self.oauth.apps[client_id]
        body = payload([e.change.event() for e in events], events[0].seq, events[-1].seq)
        return body, {
            "Content-Type": "application/json",
            "x-xero-signature": sign(app.webhook_key, body),
        }

    def describe(self, change: Change) -> dict[str, Any]:
        return {
            "tenant_id": change.tenant_id,
            "category": change.category,
            "resource_id": change.resource_id,
            "operation": change.operation,
        }

    def gave_up(self, client_id: str) -> None:
        app = self.oauth.apps.get(client_id)
        if app is not None:
            app.webhook_status = "DISABLED"
            self.disabled_at[client_id] = utc_millis(self.clock.time())


class XeroWebhooks(Dispatcher[Change]):
    def __init__(
        self, config: EmulatorConfig, clock: Clock, oauth: OAuthState, faults: FaultBox[Any]
    ) -> None:
        self.xero = XeroChannel(clock, oauth)
        timing = Timing.of(config, config.webhook_give_up_after)
        super().__init__(timing, clock, faults, self.xero)
        self.user_agent = "Xero-Webhooks-Emulator/1.0"
        self.handshakes: list[dict[str, Any]] = []

    def on_change(
        self,
        tenant_id: str,
        category: str,
        operation: str,
        resource_id: str,
        at: float,
        data: dict[str, Any] | None,
    ) -> None:
        change = Change(tenant_id, category, operation, resource_id, at, data)
        oauth = self.xero.oauth
        for client_id in sorted(oauth.connected_apps(tenant_id)):
            app = oauth.apps.get(client_id)
            if app is None or not app.webhook_url or category not in app.webhook_categories:
                continue
            if app.webhook_status == "FAILED":
                continue
            self.publish(client_id, change)

    def reset(self) -> None:
        super().reset()
        self.handshakes.clear()
        self.xero.disabled_at.clear()

    async def intent_to_receive(self, app: App, rounds: int = 4) -> dict[str, Any]:
        """POST ``rounds`` empty payloads to the app's URL, alternately signed correctly and
        not (in a seeded order); the webhook is OK if every correct one got 200 and every
        other 401, else FAILED.  Returns the record (also kept in :attr:`handshakes`)."""
        if not app.webhook_url:
            raise ValueError("the app has no webhook URL")
        signed = [True, False] * (rounds // 2) + [True] * (rounds % 2)
        self.faults.rng.shuffle(signed)
        attempts = []
        passed = True
        for correct in signed:
            body = payload([], 0, 0)
            signature = sign(app.webhook_key if correct else secrets.token_hex(16), body)
            status, error, duration_ms = await self.post(
                app.webhook_url,
                body,
                {"Content-Type": "application/json", "x-xero-signature": signature},
            )
            expected = 200 if correct else 401
            ok = status == expected
            passed = passed and ok
            attempts.append(
                {
                    "correctly_signed": correct,
                    "status": status,
                    "expected": expected,
                    "error": error,
                    "duration_ms": duration_ms,
                    "ok": ok,
                }
            )
        app.webhook_status = "OK" if passed else "FAILED"
        record = {
            "client_id": app.client_id,
            "url": app.webhook_url,
            "at": utc_millis(self.clock.time()),
            "passed": passed,
            "attempts": attempts,
        }
        self.handshakes.append(record)
        return record

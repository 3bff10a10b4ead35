"""Intuit's webhooks: the CloudEvents and legacy formats, ``intuit-signature``, and which
apps hear about a change.  Delivery (one FIFO queue per app, batching, Intuit's retry
schedule scaled by ``webhook_time_scale``, head-of-line blocking, retries that never give
up) is the shared dispatcher's (``emulators.common.webhooks``).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from emulators.common.clock import Clock
from emulators.common.faults import FaultBox
from emulators.common.webhooks import (
    Dispatcher,
    Event,
    Timing,
    hmac_sha256_b64,
    verify_hmac_sha256_b64,
)
from emulators.qbo.clock import format_utc_millis, format_utc_nanos
from emulators.qbo.config import EmulatorConfig
from emulators.qbo.model import Change
from emulators.qbo.oauth import App, OAuthState

_PAST_TENSE = {"Create": "created", "Update": "updated", "Delete": "deleted", "Void": "voided"}


def sign(verifier_token: str, body: bytes) -> str:
    """``intuit-signature``: base64 HMAC-SHA256 of the raw body, keyed by the verifier token."""
    return hmac_sha256_b64(verifier_token, body)


def verify(verifier_token: str, body: bytes, signature: str | None) -> bool:
    """Constant-time check of an ``intuit-signature`` header."""
    return verify_hmac_sha256_b64(verifier_token, body, signature)


def cloudevent(event: Event[Change], source: str) -> dict[str, Any]:
    change = event.change
    return {
        "specversion": "1.0",
        "id": event.id,
        "source": source,
        "type": f"qbo.{change.kind.lower()}.{_PAST_TENSE[change.operation]}.v1",
        "datacontenttype": "application/json",
        "time": format_utc_nanos(change.at_ns or int(change.at * 1e9)),
        "intuitentityid": change.entity_id,
        "intuitaccountid": change.realm_id,
        "data": {},
    }


def legacy_entity(change: Change) -> dict[str, Any]:
    return {
        "name": change.kind,
        "id": change.entity_id,
        "operation": change.operation,
        "lastUpdated": format_utc_millis(change.at),
    }


def cloudevents_source(client_id: str) -> str:
    return "intuit." + base64.b64encode(hashlib.sha256(client_id.encode()).digest()).decode()


def render(app: App, events: list[Event[Change]]) -> tuple[bytes, str]:
    """The POST body and content type for ``events`` in the app's format."""
    if app.webhook_format == "legacy":
        notifications: dict[str, list[dict[str, Any]]] = {}
        for event in events:
            notifications.setdefault(event.change.realm_id, []).append(legacy_entity(event.change))
        payload: Any = {
            "eventNotifications": [
                {"realmId": realm, "dataChangeEvent": {"entities": entities}}
                for realm, entities in notifications.items()
            ]
        }
        content_type = "application/json"
    else:
        source = cloudevents_source(app.client_id)
        payload = [cloudevent(event, source) for event in events]
        content_type = "application/cloudevents+json"
    return json.dumps(payload, separators=(",", ":")).encode(), content_type


class IntuitChannel:
    """Which apps hear about a change, and how their POSTs look."""

    def __init__(self, clock: Clock, oauth: OAuthState) -> None:
        self.clock = clock
        self.oauth = oauth  # replaced on reset

    def webhook_url(self, client_id: str) -> str | None:
        app = self.oauth.apps.get(client_id)
        return app.webhook_url if app is not None else None

    def connected(self, client_id: str, change: Change) -> bool:
        return client_id in self.oauth.connected_apps(change.realm_id, self.clock.time())

    def render(self, client_id: str, events: list[Event[Change]]) -> tuple[bytes, dict[str, str]]:
        app = self.oauth.apps[client_id]
        body, content_type = render(app, events)
        signature = sign(app.verifier_token, body)
        return body, {"Content-Type": content_type, "intuit-signature": signature}

    def describe(self, change: Change) -> dict[str, Any]:
        return {
            "realm_id": change.realm_id,
            "entity": change.kind,
            "id": change.entity_id,
            "operation": change.operation,
        }

    def gave_up(self, client_id: str) -> None:
        """Intuit keeps retrying; never called (no ``give_up_after``)."""


class Webhooks(Dispatcher[Change]):
    """The dispatcher on Intuit's schedule, fed by the companies' changes."""

    def __init__(
        self, config: EmulatorConfig, clock: Clock, oauth: OAuthState, faults: FaultBox[Any]
    ) -> None:
        self.intuit = IntuitChannel(clock, oauth)
        super().__init__(Timing.of(config), clock, faults, self.intuit)
        self.user_agent = "Intuit-Webhooks-Emulator/1.0"

    def on_change(self, change: Change) -> None:
        change.at_ns = change.at_ns or int(change.at * 1e9)
        now = self.clock.time()
        for client_id in sorted(self.intuit.oauth.connected_apps(change.realm_id, now)):
            app = self.intuit.oauth.apps.get(client_id)
            if app is None or not app.webhook_url:
                continue
            self.publish(client_id, change)

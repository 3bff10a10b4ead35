"""Intuit webhooks: signature verification and both payload formats, as pure functions.

The signature is checked over the raw bytes before anything is parsed. Both formats are
normalised into ``WebhookEvent``s: the CloudEvents array (which may mix realms) and the
legacy ``eventNotifications`` object. Events carry only ids; what changed is read from QBO
before anything is decided.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from aicollect import fastjson
from aicollect.errors import InvalidArgument, Unauthenticated
from services.integration.providers.base import WebhookEvent
from services.integration.providers.qbo import ENTITIES

MAX_EVENTS = 1000  # Intuit sends at most 100 per POST; anything far beyond is refused
_ENTITY_NAMES = {e.lower(): e for e in ENTITIES}
# CloudEvents verbs -> the legacy operation words.
VERBS = {
    "created": "Create",
    "updated": "Update",
    "deleted": "Delete",
    "voided": "Void",
    "merged": "Merge",
    "emailed": "Emailed",
}
OPERATIONS = set(VERBS.values())
_FRACTION = re.compile(r"\.(\d+)")


class InvalidSignature(Unauthenticated):
    default_reason = "WEBHOOK_SIGNATURE_INVALID"


class MalformedWebhook(InvalidArgument):
    default_reason = "WEBHOOK_PAYLOAD_MALFORMED"


def verify_signature(body: bytes, signature: str, verifier_tokens: Iterable[str]) -> None:
    """HMAC-SHA256 of the raw body with each configured verifier token, constant time."""
    try:
        presented = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSignature("intuit-signature is missing or not base64") from None
    if not presented:
        raise InvalidSignature("intuit-signature is missing")
    matched = False
    for token in verifier_tokens:
        if not token:
            continue
        expected = hmac.new(token.encode(), body, hashlib.sha256).digest()
        # Compare against every token (no early exit) so timing reveals nothing.
        matched |= hmac.compare_digest(expected, presented)
    if not matched:
        raise InvalidSignature("intuit-signature does not match the payload")


def parse_time(value: object) -> datetime:
    """Intuit's times: ``2015-10-05T14:42:19-0700``, ``...Z`` with up to nanoseconds."""
    if not isinstance(value, str) or not value:
        raise MalformedWebhook("an event has no time")
    text = value.strip().replace("Z", "+00:00")
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text, count=1)
    if re.search(r"[+-]\d{4}$", text):
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedWebhook(f"an event time is not ISO-8601: {value[:40]!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _text(value: object, what: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip() or len(value) > 128:
        raise MalformedWebhook(f"an event has no valid {what}")
    if not value.isprintable():
        raise MalformedWebhook(f"an event's {what} contains control characters")
    return value.strip()


def _cloud_event(item: object) -> WebhookEvent:
    if not isinstance(item, dict):
        raise MalformedWebhook("a CloudEvents entry is not an object")
    kind = _text(item.get("type"), "type")
    parts = kind.split(".")
    if len(parts) < 3 or parts[0] != "qbo":
        raise MalformedWebhook(f"unexpected CloudEvents type {kind[:60]!r}")
    entity = _ENTITY_NAMES.get(parts[1].lower(), parts[1][:1].upper() + parts[1][1:])
    operation = VERBS.get(parts[2].lower(), parts[2][:1].upper() + parts[2][1:])
    data = item.get("data")
    deleted = data.get("deletedid") or data.get("deletedId") if isinstance(data, dict) else None
    return WebhookEvent(
        event_id=_text(item.get("id"), "id"),
        realm_id=_text(item.get("intuitaccountid"), "intuitaccountid"),
        entity=entity,
        entity_id=_text(item.get("intuitentityid"), "intuitentityid"),
        operation=operation,
        occurred_at=parse_time(item.get("time")),
        deleted_id=str(deleted) if deleted else None,
        raw=item,
        relevant=entity in ENTITIES,
    )


def _legacy_events(payload: dict[str, Any]) -> list[WebhookEvent]:
    notifications = payload.get("eventNotifications")
    if not isinstance(notifications, list):
        raise MalformedWebhook("eventNotifications is not a list")
    events = []
    for notification in notifications:
        if not isinstance(notification, dict):
            raise MalformedWebhook("an eventNotifications entry is not an object")
        realm = _text(notification.get("realmId"), "realmId")
        change = notification.get("dataChangeEvent")
        entities = change.get("entities") if isinstance(change, dict) else None
        if not isinstance(entities, list):
            raise MalformedWebhook("dataChangeEvent.entities is not a list")
        for entity in entities:
            if not isinstance(entity, dict):
                raise MalformedWebhook("an entity entry is not an object")
            name = _text(entity.get("name"), "name")
            entity_id = _text(entity.get("id"), "id")
            operation = _text(entity.get("operation"), "operation")
            when = parse_time(entity.get("lastUpdated"))
            digest = hashlib.sha256(
                f"{realm}|{name}|{entity_id}|{operation}|{entity.get('lastUpdated')}".encode()
            ).hexdigest()[:32]
            raw = {"realmId": realm, **entity}
            deleted = entity.get("deletedId")
            events.append(
                WebhookEvent(
                    event_id=f"legacy-{digest}",
                    realm_id=realm,
                    entity=name,
                    entity_id=entity_id,
                    operation=operation,
                    occurred_at=when,
                    deleted_id=str(deleted) if deleted else None,
                    raw=raw,
                    relevant=name in ENTITIES,
                )
            )
    return events


def parse_payload(body: bytes) -> list[WebhookEvent]:
    """Both formats; raises MalformedWebhook (the inbox then keeps the raw body instead)."""
    try:
        payload = fastjson.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedWebhook("the body is not JSON") from None
    except RecursionError:
        raise MalformedWebhook("the body is JSON nested too deeply") from None
    if isinstance(payload, list):
        events = [_cloud_event(item) for item in payload]
    elif isinstance(payload, dict) and "eventNotifications" in payload:
        events = _legacy_events(payload)
    elif isinstance(payload, dict) and "specversion" in payload:
        events = [_cloud_event(payload)]  # a single CloudEvent, not wrapped in an array
    else:
        raise MalformedWebhook("neither a CloudEvents array nor eventNotifications")
    if len(events) > MAX_EVENTS:
        raise MalformedWebhook(f"more than {MAX_EVENTS} events in one delivery")
    return events

"""Xero webhooks: ``x-xero-signature`` over the raw bytes and the payload, as pure functions.

Xero signs every POST (events or the Intent to Receive handshake's empty ones) with the
app's webhook key: ``base64(HMAC-SHA256(key, raw body))``. A correctly signed POST gets
200 (even with no events: that is the handshake), any other 401. Events carry ids only
(``resourceId``, ``tenantId``); what changed is read from Xero before anything is decided.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from aicollect.errors import InvalidArgument, Unauthenticated
from services.integration.providers.base import WebhookEvent

SIGNATURE_HEADER = "x-xero-signature"
MAX_EVENTS = 1000
# eventCategory -> the entity the sync reads (Xero's resource name, singular).
CATEGORIES = {"INVOICE": "Invoice", "CONTACT": "Contact", "CREDITNOTE": "CreditNote"}
OPERATIONS = {"CREATE": "Create", "UPDATE": "Update"}


class InvalidSignature(Unauthenticated):
    default_reason = "WEBHOOK_SIGNATURE_INVALID"


class MalformedWebhook(InvalidArgument):
    default_reason = "WEBHOOK_PAYLOAD_MALFORMED"


def sign(body: bytes, key: str) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def verify_signature(body: bytes, signature: str, keys: Iterable[str]) -> None:
    """The signature over the raw bytes with each configured key (the current one and,
    during a rotation, the previous), compared in constant time with no early exit."""
    try:
        presented = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSignature(f"{SIGNATURE_HEADER} is not base64") from None
    if not presented:
        raise InvalidSignature(f"{SIGNATURE_HEADER} is missing")
    matched = False
    for key in keys:
        if key:
            expected = hmac.new(key.encode(), body, hashlib.sha256).digest()
            matched |= hmac.compare_digest(expected, presented)
    if not matched:
        raise InvalidSignature(f"{SIGNATURE_HEADER} does not match the payload")


def parse_time(value: object) -> datetime:
    """``eventDateUtc``: ISO-8601 without a zone (UTC), e.g. ``2024-06-21T01:15:39.902``."""
    if not isinstance(value, str) or not value:
        raise MalformedWebhook("an event has no eventDateUtc")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise MalformedWebhook(f"eventDateUtc is not ISO-8601: {value[:40]!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _text(event: dict[str, Any], key: str) -> str:
    value = event.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise MalformedWebhook(f"an event has no valid {key}")
    return value.strip()


def _event(event: Any) -> WebhookEvent:
    if not isinstance(event, dict):
        raise MalformedWebhook("an event is not an object")
    tenant = _text(event, "tenantId")
    category = _text(event, "eventCategory").upper()
    event_type = _text(event, "eventType").upper()
    resource = _text(event, "resourceId")
    occurred = parse_time(event.get("eventDateUtc"))
    entity = CATEGORIES.get(category, category.title())
    operation = OPERATIONS.get(event_type, event_type.title())
    # Xero's events have no id of their own: the digest of the event as sent is one (a
    # retry resends the same bytes); the dedupe key catches the same change re-sent.
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode("utf-8", "backslashreplace")).hexdigest()[:32]
    relevant = (
        category in CATEGORIES
        and str(event.get("tenantType") or "ORGANISATION").upper() == "ORGANISATION"
    )
    return WebhookEvent(
        event_id=f"xero-{digest}",
        realm_id=tenant,
        entity=entity,
        entity_id=resource,
        operation=operation,
        occurred_at=occurred,
        deleted_id=None,
        raw=event,
        relevant=relevant,
    )


def parse_payload(body: bytes) -> list[WebhookEvent]:
    """The events of one delivery (none for the Intent to Receive handshake)."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedWebhook("the body is not JSON") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        raise MalformedWebhook("the body has no events list")
    events = payload["events"]
    if len(events) > MAX_EVENTS:
        raise MalformedWebhook(f"more than {MAX_EVENTS} events in one delivery")
    return [_event(e) for e in events]

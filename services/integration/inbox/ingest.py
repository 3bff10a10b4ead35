"""Ingest: verify, parse and store one webhook delivery before it is acknowledged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from aicollect.errors import InvalidArgument
from services.integration.inbox.store import Delivery
from services.integration.inbox.writer import InboxWriter
from services.integration.providers.base import WebhookEvent


class WebhookFormat(Protocol):
    """A platform's webhooks (``AccountingPlatform`` has these two methods)."""

    def verify_webhook(self, body: bytes, signature: str) -> None: ...

    def parse_webhook(self, body: bytes) -> list[WebhookEvent]: ...


@dataclass(frozen=True)
class IngestResult:
    stored: int
    duplicates: int
    dropped: int
    dead_lettered: int = 0


async def ingest(
    writer: InboxWriter,
    webhooks: WebhookFormat,
    body: bytes,
    signature: str,
    provider: str = "qbo",
) -> IngestResult:
    """Verifies, parses and stores one delivery. A correctly signed body that cannot be
    stored as parsed events is kept as a raw dead letter and acknowledged all the same
    (refusing it would hold every later event of the app behind it at Intuit)."""
    webhooks.verify_webhook(body, signature)
    try:
        events = webhooks.parse_webhook(body)
    except InvalidArgument as exc:  # the platform's malformed-delivery error
        delivery = Delivery(body, [], poison=exc.message, provider=provider)
        return IngestResult(*await writer.write(delivery))
    relevant = [e for e in events if e.relevant]
    ignored = len(events) - len(relevant)
    if not relevant:
        return IngestResult(0, 0, ignored)
    stored, duplicates, dropped, dead = await writer.write(
        Delivery(body, relevant, provider=provider)
    )
    return IngestResult(stored, duplicates, dropped + ignored, dead)

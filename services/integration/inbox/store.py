"""The inbox's storage: what one delivery is, whether PostgreSQL can store it, and the
statements that store it (shared by the writer and the dead-letter replay)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy.exc import DBAPIError, OperationalError

from aicollect.errors import DomainError, Unavailable
from services.integration.providers.base import WebhookEvent
from services.integration.states import LIVE_STATES_SQL

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "qbo_inbox"
# PostgreSQL down, restarting, unreachable or too slow: Intuit must retry (503).
STORAGE_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OperationalError,
    DBAPIError,
)


@dataclass(frozen=True)
class Delivery:
    """One signed POST for the writer: its relevant events, or (``poison`` says why) none,
    when the body cannot be stored as parsed events; it is then kept as raw bytes."""

    body: bytes
    events: list[WebhookEvent]
    poison: str = ""
    provider: str = "qbo"  # whose webhook it is (a raw dead letter is parsed again by it)


# (stored, duplicates, dropped, dead_lettered) of one delivery.
Counts = tuple[int, int, int, int]


def storage_down() -> Unavailable:
    return Unavailable(
        "the webhook inbox cannot be written right now; Intuit will retry",
        reason="INBOX_UNAVAILABLE",
        retry_after_seconds=10,
    )


# SQLSTATE classes of PostgreSQL refusing the data itself while being up and well: 22 data
# exception (a value jsonb or text refuses), 54 program limit exceeded (nested too deep).
# Any other error (down, restarting, timed out, locked, out of resources) is an outage.
_REFUSED_SQLSTATE_CLASSES = ("22", "54")


def refused(exc: BaseException) -> bool:
    """True when this delivery's data was refused (dead-letter it); False for an outage (503)."""
    if isinstance(exc, asyncpg.PostgresError):
        return str(getattr(exc, "sqlstate", "") or "").startswith(_REFUSED_SQLSTATE_CLASSES)
    if isinstance(exc, asyncpg.InterfaceError):
        return isinstance(exc, ValueError)  # the driver could not encode an argument
    return isinstance(exc, (UnicodeError, RecursionError, OverflowError))


def reason_of(exc: BaseException) -> str:
    if isinstance(exc, DomainError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def safe_text(text_: str, limit: int = 500) -> str:
    """Text PostgreSQL accepts (no NUL, no lone surrogate), for reasons and realm ids."""
    return text_[:limit].replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode()


class Unstorable(ValueError):
    """An event whose payload cannot be stored as jsonb (found before any statement runs)."""


@dataclass(frozen=True)
class Rows:
    """One delivery's events with their payloads as stored (checked storable)."""

    events: list[WebhookEvent]
    payloads: list[str]


def checked_rows(events: list[WebhookEvent]) -> Rows:
    payloads = []
    for event in events:
        try:
            payload = jsonb_text(event.raw)
            payload.encode("utf-8")  # a lone surrogate (``\ud800``) cannot be stored
        except UnicodeEncodeError:
            raise Unstorable(
                f"event {event.event_id} holds a lone UTF-16 surrogate, which jsonb refuses"
            ) from None
        except (RecursionError, ValueError) as exc:
            raise Unstorable(f"event {event.event_id} cannot be stored: {exc}") from None
        payloads.append(payload)
    return Rows(events, payloads)


def store_args(deliveries: list[Rows]) -> list[Any]:
    events = [e for rows in deliveries for e in rows.events]
    return [
        [e.event_id for e in events],
        [e.dedupe_key for e in events],
        [e.realm_id for e in events],
        [e.entity for e in events],
        [e.entity_id for e in events],
        [e.operation for e in events],
        [e.occurred_at for e in events],
        [p for rows in deliveries for p in rows.payloads],
        NOTIFY_CHANNEL,
    ]


def counts_of(deliveries: list[Rows], records: list[asyncpg.Record]) -> list[Counts]:
    """What the statement did for each delivery: stored, duplicates, dropped."""
    live = {r["value"] for r in records if r["kind"] == "live"}
    stored_ids = {r["value"] for r in records if r["kind"] == "stored"}
    for realm in {e.realm_id for rows in deliveries for e in rows.events} - live:
        log.info("webhook for an unknown or disconnected realm dropped", extra={"realm_id": realm})
    results = []
    credited: set[str] = set()  # an event in two deliveries of one batch is stored once
    for rows in deliveries:
        stored = duplicates = dropped = 0
        for event in rows.events:
            if event.realm_id not in live:
                dropped += 1
            elif event.event_id in stored_ids and event.event_id not in credited:
                credited.add(event.event_id)
                stored += 1
            else:
                duplicates += 1
        results.append((stored, duplicates, dropped, 0))
    return results


# Where a raw dead letter is filed when its body names no realm (ReplayDeadLetters takes it
# as a realm_id); Intuit's realm ids are numbers and Xero's organisation ids UUIDs, so it
# cannot be a real one.
UNATTRIBUTED_REALM = "unattributed"
_REALM_IN_BODY = re.compile(
    rb'"(?:intuitaccountid|realmId)"\s*:\s*"?(\d{1,32})'
    rb'|"tenantId"\s*:\s*"([0-9a-fA-F-]{36})"'
)


def raw_realm(delivery: Delivery) -> str:
    """The realm a raw delivery is for, as far as it can be told."""
    if delivery.events:
        return delivery.events[0].realm_id
    found = _REALM_IN_BODY.search(delivery.body)
    if found is None:
        return UNATTRIBUTED_REALM
    return (found.group(1) or found.group(2)).decode()


def raw_event_id(body: bytes) -> str:
    """A raw dead letter's event id: the same body (Intuit's retry) is the same letter."""
    return f"raw-{hashlib.sha256(body).hexdigest()[:32]}"


# A JSON ``\u0000`` escape: preceded by an even number of backslashes (an odd number means
# the backslash itself is escaped and the six characters are text).
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def jsonb_text(raw: dict[str, Any]) -> str:
    """The event as stored: PostgreSQL's jsonb refuses the NUL character (``\\u0000``), so
    it is kept as the six literal characters instead; everything else is byte for byte."""
    text_ = json.dumps(raw, separators=(",", ":"), ensure_ascii=False)
    return _NUL_ESCAPE.sub(r"\1\\\\u0000", text_)


STORE_SQL = f"""
WITH batch AS (
    SELECT * FROM unnest(
        $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
        $7::timestamptz[], $8::jsonb[]
    ) AS b(event_id, dedupe_key, realm_id, entity, entity_id, operation, occurred_at, payload)
),
live AS (
    SELECT realm_id, tenant_id, provider FROM integration.connections
    WHERE realm_id IN (SELECT DISTINCT realm_id FROM batch)
      AND state IN {LIVE_STATES_SQL}
),
stored AS (
    INSERT INTO integration.webhook_inbox
        (event_id, dedupe_key, tenant_id, realm_id, provider, entity, entity_id, operation,
         occurred_at, status, attempts, last_error, payload)
    SELECT b.event_id, b.dedupe_key, l.tenant_id, b.realm_id, l.provider, b.entity,
           b.entity_id, b.operation, b.occurred_at, 'pending', 0, '', b.payload
    FROM batch b JOIN live l USING (realm_id)
    ON CONFLICT DO NOTHING
    RETURNING event_id, realm_id
),
notified AS (
    SELECT pg_notify($9, realm_id) FROM (SELECT DISTINCT realm_id FROM stored) AS r
)
SELECT 'stored' AS kind, event_id AS value FROM stored
UNION ALL SELECT 'live', realm_id FROM live
UNION ALL SELECT 'notified', '' FROM notified
"""

DEAD_LETTER_SQL = f"""
INSERT INTO integration.webhook_inbox
    (event_id, dedupe_key, tenant_id, realm_id, provider, entity, entity_id, operation,
     occurred_at, status, attempts, last_error, processed_at, payload, raw_body)
VALUES (
    $1, $1,
    COALESCE(
        (SELECT tenant_id FROM integration.connections
         WHERE realm_id = $2 AND state IN {LIVE_STATES_SQL} LIMIT 1),
        ''
    ),
    $2, $5, '', '', '', now(), 'dead', 0, $3, now(), '{{}}'::jsonb, $4
)
ON CONFLICT DO NOTHING
RETURNING id
"""

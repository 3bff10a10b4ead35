"""The durable webhook inbox: store before acknowledging, then process in the background.

Ingest: the signature is verified over the raw bytes, the payload parsed, and every
event for a connected realm is inserted in one transaction (duplicates, by event id or by
realm/entity/id/time/operation, are recognised and not stored twice) before the gateway
answers 200. Nothing is stored for a bad signature. A correctly signed body that cannot be
stored as parsed events (malformed, nested too deep, a lone surrogate, anything jsonb
refuses) is stored as its raw bytes, dead-lettered with the reason, and acknowledged: Intuit
retries a refused delivery head-of-line, so refusing it would block every later event. One
delivery never fails another in a shared commit; only a database outage answers 503.

Processing: workers in any number of replicas take a realm under a PostgreSQL advisory
lock (so each realm's events are processed in order by one worker), up to
``realm_concurrency`` realms at once per worker, and claim each realm's due events with
``FOR UPDATE SKIP LOCKED``. Events carry only ids, so each distinct entity is read from
QBO (once per batch, however many events name it) and applied as now known; because
every decision is taken on the entity's current state, a retried event never applies
stale data. Failures are retried with exponential backoff and, after a bounded number of
attempts, parked as dead letters with the reason (replayable through the admin service).
While the kill switch is on, events keep being stored and wait.

Modules: ``store`` (what a delivery is, the statements), ``writer`` (group commits),
``ingest`` (verify, parse, store), ``processor`` (claim, read, apply), ``replay`` (dead
letters back into the queue), ``stats`` (a tenant's figures). What a delivery looks like
and how it is signed is the platform's (``AccountingPlatform.verify_webhook`` /
``parse_webhook``).
"""

from services.integration.inbox.ingest import IngestResult, WebhookFormat, ingest
from services.integration.inbox.processor import EntityApplier, InboxProcessor
from services.integration.inbox.replay import replay_dead_letters
from services.integration.inbox.stats import InboxStats, stats
from services.integration.inbox.store import NOTIFY_CHANNEL, Delivery, raw_event_id
from services.integration.inbox.writer import InboxWriter

__all__ = [
    "NOTIFY_CHANNEL",
    "Delivery",
    "EntityApplier",
    "InboxProcessor",
    "InboxStats",
    "InboxWriter",
    "IngestResult",
    "WebhookFormat",
    "ingest",
    "raw_event_id",
    "replay_dead_letters",
    "stats",
]

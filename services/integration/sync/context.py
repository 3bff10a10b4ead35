"""What the sync needs from the process, and nothing more: ``SyncDeps``.

The backfill, the CDC poll, the preview, SyncNow, the scheduler and the webhook applier
receive this (not the whole process's wiring): the database, the accounting platform
with the caller every read goes through (budget, tokens, retries), the matcher's stub,
the metrics it records, its settings, and the trigger that wakes the scheduler.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from aicollect.crypto import TokenCipher
from aicollect.matching.v1 import matching_service_pb2_grpc as matching_grpc
from aicollect.metrics import IntegrationMetrics
from aicollect.settings import Settings
from services.integration.budget import Priority
from services.integration.providers.base import AccountingPlatform, EntityReader
from services.integration.sync import state
from services.integration.tokens import PlatformCaller


@dataclass(frozen=True)
class SyncSettings:
    """The sync's share of the settings (same names as ``aicollect.settings.Settings``)."""

    sync_tick_seconds: float
    sync_max_jobs: int
    backfill_retry_seconds: float
    cdc_interval_seconds: float
    cdc_overlap_seconds: float
    cdc_max_objects: int
    cdc_lookback_days: int

    @classmethod
    def from_settings(cls, settings: Settings) -> SyncSettings:
        return cls(
            sync_tick_seconds=settings.sync_tick_seconds,
            sync_max_jobs=settings.sync_max_jobs,
            backfill_retry_seconds=settings.backfill_retry_seconds,
            cdc_interval_seconds=settings.cdc_interval_seconds,
            cdc_overlap_seconds=settings.cdc_overlap_seconds,
            cdc_max_objects=settings.cdc_max_objects,
            cdc_lookback_days=settings.cdc_lookback_days,
        )


class SyncTrigger:
    """Queues backfills and wakes the scheduler; ConnectionService calls ``on_connected``."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self.wake = asyncio.Event()

    def poke(self) -> None:
        self.wake.set()

    async def on_connected(self, tenant_id: str, realm_id: str) -> None:
        """A successful connect: queue the backfill (durably) and wake the scheduler."""
        await state.request_backfill(
            self._sessions,
            tenant_id,
            realm_id,
            actor="system",
            reason="QuickBooks connected: initial backfill",
        )
        self.poke()


@dataclass(frozen=True)
class SyncDeps:
    engine: AsyncEngine  # the realm locks (advisory locks outside any transaction)
    sessions: async_sessionmaker[AsyncSession]
    cipher: TokenCipher  # SyncNow refuses a connection whose tokens cannot be opened
    platform: AccountingPlatform
    caller: PlatformCaller
    matching: matching_grpc.MatchingServiceAsyncStub
    metrics: IntegrationMetrics
    settings: SyncSettings
    trigger: SyncTrigger

    def reader(self, tenant_id: str, realm_id: str, priority: Priority) -> EntityReader:
        """Reads for one tenant's company at one priority (payments first)."""
        return self.platform.reader(self.caller, tenant_id, realm_id, priority)

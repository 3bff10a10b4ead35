"""The integration process's wiring, built once at start (``__main__``, the tests).

This is the composition root only: each part receives what it needs, never this whole
object -- ``ConnectionService`` its sessions, cipher and platforms; the sync
``SyncDeps``; the servicers their services; the workers their pieces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import aiohttp
import grpc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from aicollect.crypto import TokenCipher
from aicollect.db.engine import make_sessionmaker
from aicollect.matching.v1 import matching_admin_service_pb2_grpc as matching_admin_grpc
from aicollect.matching.v1 import matching_service_pb2_grpc as matching_grpc
from aicollect.metrics import IntegrationMetrics
from aicollect.settings import Settings
from services.integration.budget import Priority, RealmBudget, SharedBudget
from services.integration.connections import ConnectionService
from services.integration.grants import GrantTokens
from services.integration.inbox import InboxWriter
from services.integration.providers import PlatformRegistry
from services.integration.sync.context import SyncDeps, SyncSettings, SyncTrigger
from services.integration.tokens import PlatformCaller, TokenManager


@dataclass
class IntegrationDeps:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    cipher: TokenCipher
    metrics: IntegrationMetrics
    platforms: PlatformRegistry
    tokens: TokenManager
    budgets: dict[str, RealmBudget]  # each platform's per-company request budget, by name
    caller: PlatformCaller  # every call to the platform: budget, token, retries
    connections: ConnectionService
    inbox_writer: InboxWriter
    matching_admin: matching_admin_grpc.MatchingAdminServiceAsyncStub
    sync: SyncDeps  # the default platform's (QBO)
    # Every platform's sync, callers and shared-grant tokens, by provider name.
    syncs: dict[str, SyncDeps] = field(default_factory=dict)
    callers: dict[str, PlatformCaller] = field(default_factory=dict)
    # Each platform's app-wide budget, where it has app-wide limits (Xero).
    app_budgets: dict[str, RealmBudget] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        settings: Settings,
        engine: AsyncEngine,
        http: aiohttp.ClientSession,
        matcher_channel: grpc.aio.Channel,
    ) -> IntegrationDeps:
        """``matcher_channel`` carries the internal token (``aicollect.rpc.client``)."""
        settings.require("AICOLLECT_TOKEN_KEYS")
        assert settings.token_keys is not None
        sessions = make_sessionmaker(engine)
        cipher = TokenCipher.from_spec(settings.token_keys.get_secret_value())
        metrics = IntegrationMetrics()
        platforms = PlatformRegistry.build(
            settings, http, metrics, PlatformRegistry.configured(settings)
        )
        # The default platform (QBO); a connection's stored provider selects the others.
        platform = platforms.platform_for()
        grants = GrantTokens(engine, sessions, cipher, platforms, metrics)
        tokens = TokenManager(engine, sessions, cipher, platform, metrics=metrics, grants=grants)
        # One budget per platform, with its company-wide limits: the shared ledger counts
        # every replica's requests; this process's queue orders its own callers (payments
        # first) in front of it. The API calls and the OAuth callback's company check share it.
        budgets = {
            name: RealmBudget(
                platforms.platform_for(name).request_limits,
                shared=SharedBudget(engine, name, platforms.platform_for(name).request_limits),
            )
            for name in platforms.names
        }

        def waiting() -> dict[tuple[str, str], int]:
            counts = {name: budget.waiting_everywhere() for name, budget in budgets.items()}
            return {(n, p.name.lower()): c[p] for n, c in counts.items() for p in Priority}

        metrics.watch_budget_queues(waiting)
        # A platform with app-wide limits (Xero) also gets one budget for the whole app.
        app_budgets = {
            name: RealmBudget(limits, shared=SharedBudget(engine, name, limits))
            for name in platforms.names
            if (limits := platforms.platform_for(name).app_request_limits) is not None
        }
        callers = {
            name: PlatformCaller(
                tokens,
                platforms.platform_for(name),
                budgets[name],
                backoff_base_s=settings.qbo_backoff_base_seconds,
                app_budget=app_budgets.get(name),
            )
            for name in platforms.names
        }
        caller = callers[platform.name]
        trigger = SyncTrigger(sessions)
        matching = matching_grpc.MatchingServiceStub(matcher_channel)
        syncs = {
            name: SyncDeps(
                engine=engine,
                sessions=sessions,
                cipher=cipher,
                platform=platforms.platform_for(name),
                caller=callers[name],
                matching=matching,
                metrics=metrics,
                settings=SyncSettings.from_settings(settings),
                trigger=trigger,
            )
            for name in platforms.names
        }
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            cipher=cipher,
            metrics=metrics,
            platforms=platforms,
            tokens=tokens,
            budgets=budgets,
            caller=caller,
            connections=ConnectionService(
                sessions=sessions,
                cipher=cipher,
                platforms=platforms,
                dashboard_url=settings.dashboard_url,
                state_ttl=timedelta(seconds=settings.oauth_state_ttl_seconds),
                on_connected=trigger.on_connected,
                tokens=tokens,
                budgets=budgets,
            ),
            inbox_writer=InboxWriter(engine.url.render_as_string(hide_password=False)),
            matching_admin=matching_admin_grpc.MatchingAdminServiceStub(matcher_channel),
            sync=syncs[platform.name],
            syncs=syncs,
            callers=callers,
            app_budgets=app_budgets,
        )

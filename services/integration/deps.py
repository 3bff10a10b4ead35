"""Everything the integration process's servicers and workers share, built once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import aiohttp
import grpc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from aicollect.crypto import TokenCipher
from aicollect.db.engine import make_sessionmaker
from aicollect.matching.v1 import matching_admin_service_pb2_grpc as matching_admin_grpc
from aicollect.matching.v1 import matching_service_pb2_grpc as matching_grpc
from aicollect.metrics import IntegrationMetrics
from aicollect.qbo.api import QboApi
from aicollect.qbo.oauth import IntuitOAuth
from aicollect.settings import Settings
from services.integration.budget import RealmBudget
from services.integration.connections import ConnectionService
from services.integration.inbox import InboxWriter
from services.integration.sync.runner import SyncTrigger
from services.integration.tokens import QboCaller, TokenManager


@dataclass
class IntegrationDeps:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    http: aiohttp.ClientSession
    cipher: TokenCipher
    oauth: IntuitOAuth
    api: QboApi
    tokens: TokenManager
    qbo: QboCaller
    connections: ConnectionService
    metrics: IntegrationMetrics
    inbox_writer: InboxWriter
    matching: matching_grpc.MatchingServiceAsyncStub
    matching_admin: matching_admin_grpc.MatchingAdminServiceAsyncStub
    sync: SyncTrigger  # queues backfills, wakes the sync scheduler (``sync.runner``)

    @classmethod
    def create(
        cls,
        settings: Settings,
        engine: AsyncEngine,
        http: aiohttp.ClientSession,
        matcher_channel: grpc.aio.Channel,
    ) -> IntegrationDeps:
        """``matcher_channel`` carries the internal token (``aicollect.rpc.client``)."""
        settings.require(
            "AICOLLECT_TOKEN_KEYS", "QBO_CLIENT_ID", "QBO_CLIENT_SECRET", "QBO_REDIRECT_URI"
        )
        assert settings.token_keys is not None
        assert settings.qbo_client_id is not None
        assert settings.qbo_client_secret is not None
        assert settings.qbo_redirect_uri is not None
        sessions = make_sessionmaker(engine)
        cipher = TokenCipher.from_spec(settings.token_keys.get_secret_value())
        oauth = IntuitOAuth(
            http,
            discovery_url=settings.qbo_discovery_url,
            client_id=settings.qbo_client_id,
            client_secret=settings.qbo_client_secret.get_secret_value(),
            redirect_uri=settings.qbo_redirect_uri,
        )
        metrics = IntegrationMetrics()
        api = QboApi(http, settings.qbo_api_base_url, metrics=metrics)
        tokens = TokenManager(engine, sessions, cipher, oauth, metrics=metrics)
        sync = SyncTrigger(sessions)
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            http=http,
            cipher=cipher,
            oauth=oauth,
            api=api,
            tokens=tokens,
            qbo=QboCaller(
                tokens,
                api,
                RealmBudget(
                    per_minute=settings.qbo_requests_per_minute or None,
                    concurrent=settings.qbo_max_concurrent or None,
                ),
                backoff_base_s=settings.qbo_backoff_base_seconds,
            ),
            connections=ConnectionService(
                sessions=sessions,
                cipher=cipher,
                oauth=oauth,
                api=api,
                dashboard_url=settings.dashboard_url,
                state_ttl=timedelta(seconds=settings.oauth_state_ttl_seconds),
                on_connected=sync.on_connected,
            ),
            metrics=metrics,
            inbox_writer=InboxWriter(engine.url.render_as_string(hide_password=False)),
            matching=matching_grpc.MatchingServiceStub(matcher_channel),
            matching_admin=matching_admin_grpc.MatchingAdminServiceStub(matcher_channel),
            sync=sync,
        )

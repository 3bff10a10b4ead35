"""MatchingAdminService: the matching settings, owned here and read at decision time."""

from __future__ import annotations

from typing import Any

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aicollect.db.settings_store import SettingsSnapshot
from aicollect.matching.v1 import matching_admin_service_pb2 as pb
from aicollect.matching.v1 import matching_admin_service_pb2_grpc as pb_grpc
from aicollect.rpc.convert import timestamp, update_paths
from services.matcher.settings import (
    MATCHING_SPECS,
    get_matching_settings,
    update_matching_settings,
)

Context = grpc.aio.ServicerContext[Any, Any]
UPDATABLE = frozenset(spec.key for spec in MATCHING_SPECS)


def to_proto(snapshot: SettingsSnapshot) -> pb.MatchingSettings:
    return pb.MatchingSettings(
        qbo_oob_amount_tolerance_cents=int(snapshot.values["qbo_oob_amount_tolerance_cents"]),
        qbo_oob_match_window_minutes=int(snapshot.values["qbo_oob_match_window_minutes"]),
        update_time=timestamp(snapshot.update_time),
        update_actor=snapshot.update_actor,
    )


class MatchingAdminServicer(pb_grpc.MatchingAdminServiceServicer):
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def GetMatchingSettings(
        self, request: pb.GetMatchingSettingsRequest, context: Context
    ) -> pb.GetMatchingSettingsResponse:
        async with self._sessions() as session:
            return pb.GetMatchingSettingsResponse(
                settings=to_proto(await get_matching_settings(session))
            )

    async def UpdateMatchingSettings(
        self, request: pb.UpdateMatchingSettingsRequest, context: Context
    ) -> pb.UpdateMatchingSettingsResponse:
        paths = update_paths(request.update_mask, UPDATABLE)
        changes = {path: getattr(request.settings, path) for path in paths}
        async with self._sessions.begin() as session:
            snapshot = await update_matching_settings(
                session, changes, actor=request.actor, reason=request.reason
            )
        return pb.UpdateMatchingSettingsResponse(settings=to_proto(snapshot))

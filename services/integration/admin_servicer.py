"""AdminService: tenant flags and platform settings in one view, audited.

The kill switch is stored here; the matching settings are the matcher's and are read and
written through ``MatchingAdminService`` (no copy is kept here).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

import grpc
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aicollect.db.settings_store import require_actor_and_reason
from aicollect.errors import InvalidArgument, Unavailable
from aicollect.integration.v1 import admin_service_pb2 as pb
from aicollect.integration.v1 import admin_service_pb2_grpc as pb_grpc
from aicollect.matching.v1 import matching_admin_service_pb2 as mpb
from aicollect.matching.v1 import matching_admin_service_pb2_grpc as mpb_grpc
from aicollect.provider import SUPPORTED, require_name
from aicollect.rpc import paging
from aicollect.rpc.convert import from_timestamp, timestamp, update_paths
from services.integration import admin, audit, inbox
from services.integration.models import AuditEvent
from services.integration.providers import PlatformRegistry

Context = grpc.aio.ServicerContext[Any, Any]

KILL_SWITCH = admin.KILL_SWITCH.key
# One provider's kill switch in an update mask: ``provider_kill_switch.<name>``.
PROVIDER_KILL_SWITCH = "provider_kill_switch"
MATCHING_KEYS = frozenset({"oob_amount_tolerance_cents", "oob_match_window_minutes"})
UPDATABLE = frozenset({KILL_SWITCH}) | MATCHING_KEYS
SETTINGS_SUBJECTS = ("tenant", "platform_setting", "matching_setting")
# Settings renamed when matching became provider-neutral: their audit history was recorded
# under the former name, and is listed under the current one.
FORMER_NAMES = {
    "oob_amount_tolerance_cents": "qbo_oob_amount_tolerance_cents",
    "oob_match_window_minutes": "qbo_oob_match_window_minutes",
}
CURRENT_NAMES = {old: new for new, old in FORMER_NAMES.items()}
MATCHER_TIMEOUT_S = 5.0


def _current_name(setting: str) -> str:
    return CURRENT_NAMES.get(setting, setting)


def _text(value: object) -> str:
    return "" if value is None else json.dumps(value)


def _tenant_proto(flags: admin.TenantFlags) -> pb.TenantSettings:
    return pb.TenantSettings(
        tenant_id=flags.tenant_id,
        qbo_enabled=flags.qbo_enabled,
        update_time=timestamp(flags.update_time),
        provider_enabled={p.value: flags.is_enabled(p) for p in SUPPORTED},
    )


def _kill_switch_changes(
    mask: FieldMask, settings: pb.PlatformSettings
) -> tuple[list[str], dict[str, object]]:
    """Splits an update mask: (its other paths, the kill switches to write by setting key).

    ``qbo_kill_switch`` and ``provider_kill_switch.qbo`` name the same setting; naming it
    twice with different values is INVALID_ARGUMENT, like an unknown provider."""
    prefix = PROVIDER_KILL_SWITCH + "."
    named = {path for path in mask.paths if path.startswith(prefix)}  # checked just below
    rest: list[str] = []
    changes: dict[str, object] = {}
    for path in update_paths(mask, UPDATABLE | named):
        if path == KILL_SWITCH:
            key, value = KILL_SWITCH, settings.qbo_kill_switch
        elif path in named:
            provider = require_name(path.removeprefix(prefix))  # else INVALID_ARGUMENT
            key = admin.KILL_SWITCHES[provider].key
            value = settings.provider_kill_switch.get(provider.value, False)
        else:
            rest.append(path)
            continue
        if key in changes and changes[key] != value:
            raise InvalidArgument(f"{path} contradicts another path of update_mask", field=path)
        changes[key] = value
    return rest, changes


def _time_filter(
    request: pb.ListAuditEventsRequest, name: Literal["start_time", "end_time"]
) -> datetime | None:
    if not request.HasField(name):
        return None
    value: Timestamp = getattr(request, name)
    try:
        return from_timestamp(value)
    except (ValueError, OverflowError):
        raise InvalidArgument(f"{name} is not a valid timestamp", field=name) from None


def _audit_event_pb(row: AuditEvent) -> pb.AuditEvent:
    details = Struct()
    details.update(audit.safe_details(row.details or {}))
    return pb.AuditEvent(
        event_id=str(row.id),
        tenant_id=row.tenant_id or "",
        subject_type=row.subject_type,
        subject_id=row.subject_id,
        action=row.action,
        actor=row.actor,
        reason=row.reason,
        details=details,
        create_time=timestamp(row.created_at),
    )


class AdminServicer(pb_grpc.AdminServiceServicer):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        matcher: mpb_grpc.MatchingAdminServiceAsyncStub,
        platforms: PlatformRegistry,
    ) -> None:
        self._sessions = sessions
        self._matcher = matcher
        self._platforms = platforms  # re-parses raw dead letters (ReplayDeadLetters)

    async def GetTenantSettings(
        self, request: pb.GetTenantSettingsRequest, context: Context
    ) -> pb.GetTenantSettingsResponse:
        async with self._sessions() as session:
            flags = await admin.get_tenant_flags(session, request.tenant_id)
        return pb.GetTenantSettingsResponse(settings=_tenant_proto(flags))

    async def SetTenantSettings(
        self, request: pb.SetTenantSettingsRequest, context: Context
    ) -> pb.SetTenantSettingsResponse:
        async with self._sessions.begin() as session:
            flags = await admin.set_tenant_flags(
                session,
                request.tenant_id,
                enabled=admin.tenant_changes(request.qbo_enabled, request.provider_enabled),
                actor=request.actor,
                reason=request.reason,
            )
        return pb.SetTenantSettingsResponse(settings=_tenant_proto(flags))

    async def _matching(self) -> mpb.MatchingSettings:
        try:
            reply = await self._matcher.GetMatchingSettings(
                mpb.GetMatchingSettingsRequest(), timeout=MATCHER_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(
                f"the matcher did not answer ({exc.code().name}); matching settings unavailable",
                reason="MATCHER_UNAVAILABLE",
            ) from None
        return reply.settings

    async def _view(self) -> pb.PlatformSettings:
        matching = await self._matching()
        async with self._sessions() as session:
            own = await admin.get_platform_settings(session)
        times = [t for t in (own.update_time,) if t is not None]
        if matching.HasField("update_time"):
            times.append(matching.update_time.ToDatetime(tzinfo=times[0].tzinfo if times else None))
        return pb.PlatformSettings(
            qbo_kill_switch=bool(own.values[KILL_SWITCH]),
            provider_kill_switch={
                p.value: bool(own.values[spec.key]) for p, spec in admin.KILL_SWITCHES.items()
            },
            oob_amount_tolerance_cents=matching.oob_amount_tolerance_cents,
            oob_match_window_minutes=matching.oob_match_window_minutes,
            update_time=timestamp(max(times)) if times else None,
        )

    async def GetPlatformSettings(
        self, request: pb.GetPlatformSettingsRequest, context: Context
    ) -> pb.GetPlatformSettingsResponse:
        return pb.GetPlatformSettingsResponse(settings=await self._view())

    async def UpdatePlatformSettings(
        self, request: pb.UpdatePlatformSettingsRequest, context: Context
    ) -> pb.UpdatePlatformSettingsResponse:
        paths, kill_switches = _kill_switch_changes(request.update_mask, request.settings)
        actor, reason = require_actor_and_reason(request.actor, request.reason)
        matching_paths = [p for p in paths if p in MATCHING_KEYS]
        # The matcher validates and writes first: if it refuses, nothing here has changed.
        if matching_paths:
            before = await self._matching()
            forwarded = mpb.MatchingSettings(
                **{p: getattr(request.settings, p) for p in matching_paths}
            )
            try:
                reply = await self._matcher.UpdateMatchingSettings(
                    mpb.UpdateMatchingSettingsRequest(
                        settings=forwarded,
                        update_mask=FieldMask(paths=matching_paths),
                        actor=actor,
                        reason=reason,
                    ),
                    timeout=MATCHER_TIMEOUT_S,
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                    raise InvalidArgument(exc.details() or "invalid matching setting") from None
                raise Unavailable(
                    f"the matcher did not accept the change ({exc.code().name})",
                    reason="MATCHER_UNAVAILABLE",
                ) from None
            async with self._sessions.begin() as session:
                for path in matching_paths:
                    old, new = getattr(before, path), getattr(reply.settings, path)
                    if old != new:
                        session.add(
                            AuditEvent(
                                tenant_id=None,
                                subject_type="matching_setting",
                                subject_id=path,
                                action="setting.changed",
                                actor=actor,
                                reason=reason,
                                details={"key": path, "old": old, "new": new, "owner": "matcher"},
                            )
                        )
        if kill_switches:
            async with self._sessions.begin() as session:
                await admin.update_platform_settings(
                    session, kill_switches, actor=actor, reason=reason
                )
        return pb.UpdatePlatformSettingsResponse(settings=await self._view())

    async def ListSettingsAuditEvents(
        self, request: pb.ListSettingsAuditEventsRequest, context: Context
    ) -> pb.ListSettingsAuditEventsResponse:
        size = paging.page_size(request.page_size)
        filters = {"tenant_id": request.tenant_id, "setting": request.setting}
        position = paging.decode_token(request.page_token, filters)
        query = (
            select(AuditEvent)
            .where(AuditEvent.subject_type.in_(SETTINGS_SUBJECTS))
            .order_by(AuditEvent.id.desc())
            .limit(size + 1)
        )
        if request.tenant_id:
            query = query.where(AuditEvent.tenant_id == request.tenant_id)
        if request.setting:
            names = {request.setting, FORMER_NAMES.get(request.setting, request.setting)}
            query = query.where(AuditEvent.details["key"].astext.in_(sorted(names)))
        if position is not None:
            query = query.where(AuditEvent.id < int(position["before_id"]))
        async with self._sessions() as session:
            rows = list((await session.execute(query)).scalars())
        page, more = rows[:size], len(rows) > size
        return pb.ListSettingsAuditEventsResponse(
            events=[
                pb.SettingsAuditEvent(
                    event_id=str(row.id),
                    setting=_current_name(str(row.details.get("key", row.subject_id))),
                    tenant_id=row.tenant_id or "",
                    old_value=_text(row.details.get("old")),
                    new_value=_text(row.details.get("new")),
                    actor=row.actor,
                    reason=row.reason,
                    create_time=timestamp(row.created_at),
                )
                for row in page
            ],
            next_page_token=paging.encode_token({"before_id": page[-1].id}, filters)
            if more
            else "",
        )

    async def ListAuditEvents(
        self, request: pb.ListAuditEventsRequest, context: Context
    ) -> pb.ListAuditEventsResponse:
        wanted = audit.AuditFilter(
            tenant_id=request.tenant_id,
            subject_type=request.subject_type,
            action_prefix=request.action_prefix,
            start=_time_filter(request, "start_time"),
            end=_time_filter(request, "end_time"),
        )
        async with self._sessions() as session:
            rows, token = await audit.list_audit_events(
                session, wanted, request.page_size, request.page_token
            )
        return pb.ListAuditEventsResponse(
            events=[_audit_event_pb(row) for row in rows], next_page_token=token
        )

    async def ReplayDeadLetters(
        self, request: pb.ReplayDeadLettersRequest, context: Context
    ) -> pb.ReplayDeadLettersResponse:
        actor, reason = require_actor_and_reason(request.actor, request.reason)
        scope = request.WhichOneof("scope")
        if scope is None or not getattr(request, scope).strip():
            raise InvalidArgument("tenant_id or realm_id is required", field="scope")
        async with self._sessions.begin() as session:
            replayed = await inbox.replay_dead_letters(
                session,
                self._platforms.platform_for,  # each raw dead letter's own provider
                tenant_id=request.tenant_id if scope == "tenant_id" else None,
                realm_id=request.realm_id if scope == "realm_id" else None,
                event_ids=list(request.event_ids),
            )
            if replayed:
                session.add(
                    AuditEvent(
                        tenant_id=request.tenant_id or None,
                        subject_type="webhook_inbox",
                        subject_id=request.tenant_id or request.realm_id,
                        action="inbox.dead_letters_replayed",
                        actor=actor,
                        reason=reason,
                        details={"count": len(replayed), "inbox_ids": replayed[:100]},
                    )
                )
        return pb.ReplayDeadLettersResponse(replayed_count=len(replayed))

"""Disconnect and stop all outreach: the tenant-wide pause the integration asks of the
matcher after a disconnection (``MatchingService.PauseOutreach``; the pause itself, its
events and its audit entries are the matcher's, ``services/matcher/pauses.py``)."""

from __future__ import annotations

import grpc

from aicollect.db.settings_store import require_actor_and_reason
from aicollect.errors import Unavailable
from aicollect.matching.v1 import matching_service_pb2 as mpb
from aicollect.matching.v1 import matching_service_pb2_grpc as mpb_grpc
from aicollect.rpc.errors import error_info

MATCHER_TIMEOUT_S = 30.0
DEFAULT_REASON = "disconnected with stop all outreach"


def pause_words(actor: str, reason: str) -> tuple[str, str]:
    """The actor and reason the pause will carry, checked before anything changes."""
    return require_actor_and_reason(actor, reason.strip() or DEFAULT_REASON)


async def stop_all_outreach(
    matching: mpb_grpc.MatchingServiceAsyncStub, tenant_id: str, actor: str, reason: str
) -> str:
    """Pauses every placement of the tenant; the pause id (an open one is kept as is)."""
    actor, reason = pause_words(actor, reason)
    try:
        reply = await matching.PauseOutreach(
            mpb.PauseOutreachRequest(
                tenant_id=tenant_id,
                target=mpb.OutreachTarget(all_placements=True),
                actor=actor,
                reason=reason,
            ),
            timeout=MATCHER_TIMEOUT_S,
        )
    except grpc.aio.AioRpcError as exc:
        info = error_info(exc)
        if info is not None and info.reason == "OUTREACH_ALREADY_PAUSED":
            return str(info.metadata["pause_id"])
        raise Unavailable(
            f"disconnected, but the matcher did not pause outreach ({exc.code().name}); "
            "call Disconnect again with stop_all_outreach to complete it",
            reason="MATCHER_UNAVAILABLE",
        ) from None
    return reply.pause.pause_id

"""PauseOutreach, ResumeOutreach, ListOutreachPauses: protos to ``pauses`` and back."""

from __future__ import annotations

from aicollect.errors import InvalidArgument
from aicollect.matching.v1 import matching_service_pb2 as pb
from aicollect.rpc.convert import timestamp
from services.matcher.models import OutreachPause
from services.matcher.pauses import DEBTOR, PLACEMENT, TENANT, Target, target


def target_in(message: pb.OutreachTarget, has: bool) -> Target:
    """The request's target, validated; nothing set, or ``all_placements`` false, is bad
    input (a tenant-wide pause is never the default)."""
    which = message.WhichOneof("target") if has else None
    if which == "placement_id":
        return target(PLACEMENT, placement_id=message.placement_id)
    if which == "debtor":
        return target(
            DEBTOR, company_id=message.debtor.company_id, customer_id=message.debtor.customer_id
        )
    if which == "all_placements" and message.all_placements:
        return target(TENANT)
    raise InvalidArgument(
        "target is required: a placement_id, a debtor, or all_placements = true",
        field="target",
    )


def target_pb(pause: OutreachPause) -> pb.OutreachTarget:
    if pause.scope == PLACEMENT:
        return pb.OutreachTarget(placement_id=pause.placement_id or "")
    if pause.scope == DEBTOR:
        return pb.OutreachTarget(
            debtor=pb.OutreachDebtor(company_id=pause.company_id, customer_id=pause.customer_id)
        )
    assert pause.scope == TENANT
    return pb.OutreachTarget(all_placements=True)


def pause_pb(pause: OutreachPause) -> pb.OutreachPause:
    return pb.OutreachPause(
        pause_id=pause.pause_id,
        tenant_id=pause.tenant_id,
        target=target_pb(pause),
        paused_by=pause.paused_by,
        pause_reason=pause.pause_reason,
        pause_time=timestamp(pause.paused_at),
        resumed_by=pause.resumed_by or "",
        resume_reason=pause.resume_reason or "",
        resume_time=timestamp(pause.resumed_at),
    )

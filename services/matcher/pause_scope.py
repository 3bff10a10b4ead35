"""The one definition of "a person paused this placement's outreach", as SQL.

A placement's outreach is paused while an open row of ``matching.outreach_pauses`` covers
it: its own pause, its debtor's (same tenant, company and customer) or its tenant's. Both
the pauses (``pauses.py``) and the journal's outbox (a restore's RESUME is held back for a
paused placement) read it from here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, exists, or_, select

from services.matcher.models import OutreachPause, Placement


def covers(pause: type[OutreachPause] | Any, placement: type[Placement] | Any) -> Any:
    """A pause row covers a placement row (whether or not it is open)."""
    return and_(
        pause.tenant_id == placement.tenant_id,
        or_(
            pause.scope == "tenant",
            and_(
                pause.scope == "debtor",
                pause.company_id == placement.company_id,
                pause.customer_id == placement.customer_id,
            ),
            and_(pause.scope == "placement", pause.placement_id == placement.placement_id),
        ),
    )


def paused(placement: type[Placement] | Any = Placement, *, besides: str = "") -> Any:
    """The placement's outreach is paused by an open pause (other than ``besides``)."""
    condition = and_(OutreachPause.resumed_at.is_(None), covers(OutreachPause, placement))
    if besides:
        condition = and_(condition, OutreachPause.pause_id != besides)
    return exists(select(OutreachPause.pause_id).where(condition))

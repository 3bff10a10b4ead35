"""The one mapping from a rule's verdict to what it means (decisions/outcomes.py)."""

from __future__ import annotations

import itertools

from services.matcher.decisions.outcomes import (
    RESTORABLE,
    REVIEW,
    TERMINAL,
    VERDICTS,
    Verdict,
    event_for,
)
from services.matcher.domain import EventType, Status


def test_every_verdict_has_one_meaning() -> None:
    assert set(VERDICTS) == set(Verdict)
    for verdict, row in VERDICTS.items():
        assert row.action.startswith("placement."), verdict
        # A verdict that stops or pauses outreach says so in its status.
        assert row.status is None or row.status is not Status.ACTIVE, verdict


def test_the_statuses_are_one_partition() -> None:
    assert not TERMINAL & REVIEW
    assert Status.ACTIVE not in TERMINAL | REVIEW
    assert set(Status) == {Status.ACTIVE, *TERMINAL, *REVIEW}
    assert RESTORABLE <= TERMINAL | REVIEW


def test_no_status_change_resumes_outreach() -> None:
    """Only a person's restore emits RESUME; the table's events never do."""
    for old, new, moved in itertools.product(Status, Status, (False, True)):
        event = event_for(old, new, moved)
        assert event is not EventType.RESUME
        if new in TERMINAL and old not in TERMINAL:
            assert event is EventType.STOP
        if new in REVIEW and old not in REVIEW:
            assert event is EventType.PAUSE

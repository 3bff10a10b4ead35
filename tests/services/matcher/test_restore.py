"""RestorePlacement: the safe-restore procedure support follows (docs/restore-procedure.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest

from aicollect.matching.v1 import matching_service_pb2 as pb
from tests.helpers.grpcurl import grpcurl
from tests.services.matcher.conftest import (
    Matcher,
    invalid_field,
    outcomes,
    placement_input,
    qbo_invoice,
    qbo_payment,
    reason_of,
    status_name,
)


async def test_restore_after_wrong_resolution_survives_replays(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    await matcher.pay(qbo_payment("160", [("70", 4_000)]))
    wrong = qbo_payment("163", [("70", 6_000)], version="0")
    await matcher.pay(wrong)
    resolved = await matcher.get(placement.placement_id)
    assert status_name(resolved) == "RESOLVED_OUT_OF_BAND"

    restored = await matcher.restore(resolved)

    assert status_name(restored) == "ACTIVE"
    assert restored.balance.minor_units == 6_000  # what was owed before payment 163
    assert restored.resolution_reason == ""
    assert restored.resolving_payment_id == ""
    assert not restored.HasField("resolve_time")
    assert restored.version == resolved.version + 1
    assert await matcher.outbox() == [
        ("balance_changed", "active", 6_000),
        ("stop", "resolved_out_of_band", 0),
        ("resume", "active", 6_000),
    ]
    (entry,) = [
        e for e in await matcher.audit(placement.placement_id) if e.action.endswith("restored")
    ]
    assert entry.action == "placement.restored"
    assert entry.actor == "dana@support"
    assert "ticket 812" in entry.reason
    assert entry.details["excluded_payment_id"] == "163"
    assert entry.details["previous_status"] == "resolved_out_of_band"

    # A duplicate webhook and a CDC poll bring the same version again: the restore holds.
    for source in (pb.CHANGE_SOURCE_WEBHOOK, pb.CHANGE_SOURCE_CDC):
        assert outcomes(await matcher.pay(wrong, source)) == ["EXCLUDED_AFTER_RESTORE"]
    # So does the invoice as QBO still shows it.
    await matcher.invoice(
        qbo_invoice(
            "70",
            0,
            linked=[("160", pb.LINKED_TXN_TYPE_PAYMENT), ("163", pb.LINKED_TXN_TYPE_PAYMENT)],
            version="5",
        )
    )
    still = await matcher.get(placement.placement_id)
    assert (status_name(still), still.balance.minor_units) == ("ACTIVE", 6_000)
    assert len(await matcher.outbox()) == 3

    # The bookkeeper changes payment 163 in QBO: it is matched again.
    (again,) = await matcher.pay(qbo_payment("163", [("70", 6_000)], version="1"))
    assert outcomes([again]) == ["RESOLVED_OUT_OF_BAND"]
    assert status_name(await matcher.get(placement.placement_id)) == "RESOLVED_OUT_OF_BAND"


async def test_restore_from_needs_review_after_void(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    await matcher.pay(qbo_payment("163", [("70", 10_000)]))
    voided = qbo_payment("163", [], total=0, version="1", state=pb.ENTITY_STATE_VOIDED)
    await matcher.pay(voided)
    flagged = await matcher.get(placement.placement_id)
    restored = await matcher.restore(flagged, reason="creditor confirms the check bounced")
    assert (status_name(restored), restored.balance.minor_units) == ("ACTIVE", 10_000)
    assert outcomes(await matcher.pay(voided)) == ["EXCLUDED_AFTER_RESTORE"]
    assert [kind for kind, _, _ in await matcher.outbox()] == ["stop", "pause", "resume"]


async def test_restore_from_unapplied_pause_is_not_undone_by_a_replay(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    unapplied = qbo_payment("200", [], unapplied=10_000)
    await matcher.pay(unapplied)
    paused = await matcher.get(placement.placement_id)
    assert status_name(paused) == "PAUSED_PENDING_REVIEW"
    await matcher.restore(paused, reason="the credit is for another job")
    assert outcomes(await matcher.pay(unapplied, pb.CHANGE_SOURCE_CDC)) == [
        "EXCLUDED_AFTER_RESTORE"
    ]
    assert status_name(await matcher.get(placement.placement_id)) == "ACTIVE"


async def test_restore_of_a_resolution_known_only_from_the_invoice(matcher: Matcher) -> None:
    """The invoice showed payment 164 before the payment itself was read."""
    (placement,) = await matcher.place(placement_input("70", 10_000))
    await matcher.invoice(qbo_invoice("70", 0, linked=[("164", pb.LINKED_TXN_TYPE_PAYMENT)]))
    restored = await matcher.restore(await matcher.get(placement.placement_id))
    assert restored.balance.minor_units == 10_000
    before_restore = datetime.now(UTC) - timedelta(minutes=5)
    first_read = qbo_payment("164", [("70", 10_000)], updated=before_restore)
    assert outcomes(await matcher.pay(first_read)) == ["EXCLUDED_AFTER_RESTORE"]
    assert outcomes(await matcher.pay(first_read)) == ["EXCLUDED_AFTER_RESTORE"]
    after = await matcher.get(placement.placement_id)
    assert (status_name(after), after.balance.minor_units) == ("ACTIVE", 10_000)
    # Changed in QBO after the restore: matched again.
    changed = qbo_payment("164", [("70", 10_000)], version="1")
    assert outcomes(await matcher.pay(changed)) == ["RESOLVED_OUT_OF_BAND"]


async def test_stale_version_is_refused_and_changes_nothing(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    await matcher.pay(qbo_payment("163", [("70", 10_000)]))
    resolved = await matcher.get(placement.placement_id)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await matcher.restore(resolved, version=resolved.version - 1)
    assert info.value.code() == grpc.StatusCode.ABORTED
    assert reason_of(info) == "CONCURRENT_MODIFICATION"
    assert await matcher.get(placement.placement_id) == resolved
    assert [kind for kind, _, _ in await matcher.outbox()] == ["stop"]


async def test_only_resolved_or_review_placements_can_be_restored(matcher: Matcher) -> None:
    active, portal = await matcher.place(
        placement_input("70", 10_000), placement_input("71", 10_000)
    )
    await matcher.portal(portal.placement_id, "pp-1", 10_000)
    for placement in (active, await matcher.get(portal.placement_id)):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await matcher.restore(placement)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert reason_of(info) == "PLACEMENT_NOT_RESTORABLE"


async def test_restore_requires_actor_reason_and_version(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    await matcher.pay(qbo_payment("163", [("70", 10_000)]))
    resolved = await matcher.get(placement.placement_id)
    for field, actor, reason, version in (
        ("actor", " ", "ticket 1", resolved.version),
        ("reason", "dana@support", "", resolved.version),
        ("expected_version", "dana@support", "ticket 1", 0),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await matcher.restore(resolved, actor=actor, reason=reason, version=version)
        assert invalid_field(info) == field
    assert await matcher.get(placement.placement_id) == resolved


async def test_unknown_placement_is_not_found(matcher: Matcher) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await matcher.stub.RestorePlacement(
            pb.RestorePlacementRequest(
                placement_id="nope", expected_version=1, actor="a", reason="r"
            )
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_the_documented_grpcurl_procedure_works(matcher: Matcher, matcher_addr: str) -> None:
    """docs/restore-procedure.md, steps 1 and 2, as support runs them."""
    (placement,) = await matcher.place(placement_input("70", 10_000))
    await matcher.pay(qbo_payment("163", [("70", 10_000)]))
    found = await grpcurl(matcher_addr, "ListPlacements", {"tenant_id": "acme", "invoice_id": "70"})
    (listed,) = found["placements"]
    assert listed["status"] == "PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND"
    assert listed["resolving_payment_id"] == "163"
    reply = await grpcurl(
        matcher_addr,
        "RestorePlacement",
        {
            "placement_id": listed["placement_id"],
            "expected_version": int(listed["version"]),
            "actor": "dana@support.ai-collect",
            "reason": "ticket 812: creditor confirms 100.00 USD is still owed",
        },
    )
    restored = reply["placement"]
    assert restored["status"] == "PLACEMENT_STATUS_ACTIVE"
    assert restored["balance"]["minor_units"] == "10000"
    trail = await grpcurl(matcher_addr, "ListAuditEvents", {"placement_id": placement.placement_id})
    last = trail["events"][-1]
    assert last["action"] == "placement.restored"
    assert last["details"]["excluded_payment_id"] == "163"

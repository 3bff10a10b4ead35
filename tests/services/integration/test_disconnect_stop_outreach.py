"""Disconnect and stop all outreach (DisconnectRequest.stop_all_outreach): the
integration disconnects, then the matcher pauses every placement of the tenant."""

from __future__ import annotations

import grpc
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aicollect.integration.v1 import integration_service_pb2 as pb
from aicollect.integration.v1 import integration_service_pb2_grpc as igrpc
from aicollect.matching.v1 import matching_service_pb2 as mpb
from aicollect.matching.v1 import matching_service_pb2_grpc as mgrpc
from aicollect.rpc.client import internal_channel
from services.integration.models import Connection
from services.matcher.models import OutreachEventRow, OutreachPause
from tests.conftest import INTERNAL_TOKEN, Emulator
from tests.helpers.connections import TENANT, connect, enable
from tests.services.matcher.conftest import REALM, placement_input


async def _events(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[str, str]]:
    async with sessions() as session:
        rows = await session.execute(
            select(OutreachEventRow.type, OutreachEventRow.reason).order_by(OutreachEventRow.id)
        )
        return [(kind, reason) for kind, reason in rows.tuples()]


async def test_disconnect_and_stop_all_outreach_pauses_the_tenant(
    integration_channel: grpc.aio.Channel,
    matcher_addr: str,
    emulator: Emulator,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    matcher_channel = internal_channel(matcher_addr, INTERNAL_TOKEN)
    matching = mgrpc.MatchingServiceStub(matcher_channel)
    try:
        await matching.UpsertPlacements(
            mpb.UpsertPlacementsRequest(
                tenant_id=TENANT,
                provider=mpb.PROVIDER_QBO,
                company_id=REALM,
                placements=[placement_input("70"), placement_input("71")],
            )
        )
        await enable(integration_channel)
        assert (await connect(integration_channel)).connected
        stub = igrpc.IntegrationServiceStub(integration_channel)

        # Bad input is refused before anything changes: still connected, nothing paused.
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Disconnect(pb.DisconnectRequest(tenant_id=TENANT, stop_all_outreach=True))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        async with sessions() as session:
            row = await session.get(Connection, TENANT)
            assert row is not None
            assert row.refresh_token is not None
        assert await _events(sessions) == []

        reply = await stub.Disconnect(
            pb.DisconnectRequest(tenant_id=TENANT, actor="jane@acme", stop_all_outreach=True)
        )
        assert reply.state == pb.CONNECTION_STATE_DISCONNECTED
        assert reply.outreach_pause_id
        events = await _events(sessions)
        assert [kind for kind, _ in events] == ["pause", "pause"]
        assert all("disconnected with stop all outreach" in reason for _, reason in events)

        # Again (a retry): the same pause, nothing emitted twice.
        again = await stub.Disconnect(
            pb.DisconnectRequest(tenant_id=TENANT, actor="jane@acme", stop_all_outreach=True)
        )
        assert again.outreach_pause_id == reply.outreach_pause_id
        assert len(await _events(sessions)) == 2
        async with sessions() as session:
            (pause,) = (await session.execute(select(OutreachPause))).scalars()
        assert (pause.scope, pause.paused_by) == ("tenant", "jane@acme")

        listed = await matching.ListOutreachPauses(mpb.ListOutreachPausesRequest(tenant_id=TENANT))
        assert len(listed.pauses) == 1
    finally:
        await matcher_channel.close(None)


async def test_a_plain_disconnect_leaves_outreach_alone(
    integration_channel: grpc.aio.Channel,
    matcher_addr: str,
    emulator: Emulator,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    matcher_channel = internal_channel(matcher_addr, INTERNAL_TOKEN)
    try:
        await mgrpc.MatchingServiceStub(matcher_channel).UpsertPlacements(
            mpb.UpsertPlacementsRequest(
                tenant_id=TENANT,
                provider=mpb.PROVIDER_QBO,
                company_id=REALM,
                placements=[placement_input("70")],
            )
        )
        await enable(integration_channel)
        assert (await connect(integration_channel)).connected
        reply = await igrpc.IntegrationServiceStub(integration_channel).Disconnect(
            pb.DisconnectRequest(tenant_id=TENANT, actor="jane@acme")
        )
        assert reply.outreach_pause_id == ""
        assert await _events(sessions) == []
    finally:
        await matcher_channel.close(None)

"""Property-based and mutation fuzzing of what strangers can send us: the webhook endpoint,
the OAuth callback and the RPCs' inputs. No crash, no 500, nothing stored without a valid
signature, and a clear error every time."""

from __future__ import annotations

import base64
import json
import string
from collections.abc import AsyncIterator, Awaitable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import grpc
import pytest
import pytest_asyncio
from google.protobuf.descriptor import Descriptor, FieldDescriptor, ServiceDescriptor
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from aicollect.integration.v1 import admin_service_pb2 as apb
from aicollect.integration.v1 import admin_service_pb2_grpc as agrpc
from aicollect.integration.v1 import integration_service_pb2 as pb
from aicollect.integration.v1 import integration_service_pb2_grpc as igrpc
from aicollect.matching.v1 import matching_admin_service_pb2 as mapb
from aicollect.matching.v1 import matching_service_pb2 as mpb
from aicollect.rpc.client import internal_channel
from aicollect.rpc.errors import error_info
from services.integration.models import InboxEvent
from services.integration.providers.qbo.webhooks import MalformedWebhook, parse_payload
from tests.conftest import INTERNAL_TOKEN, REALM_ID, Emulator
from tests.helpers.connections import connect
from tests.helpers.webhooks import cloud_events, sign
from tests.stack import Stack, enable_tenant, full_stack

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest_asyncio.fixture
async def stack(engine: AsyncEngine, emulator: Emulator) -> AsyncIterator[Stack]:
    async with full_stack(engine, emulator) as s:
        await enable_tenant(s, "acme")
        async with internal_channel(s.integration_addr, INTERNAL_TOKEN) as channel:
            assert (await connect(channel, "acme")).connected
        yield s


async def _post(stack: Stack, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{stack.gateway_url}/v1/webhooks/qbo", data=body, headers=headers) as resp,
    ):
        text = await resp.text()
        return resp.status, text


async def _stored(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(
            (await session.execute(select(func.count()).select_from(InboxEvent))).scalar_one()
        )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
EVENT_KEYS = ["specversion", "id", "type", "time", "intuitentityid", "intuitaccountid", "data"]


def _mutations() -> st.SearchStrategy[bytes]:
    """Valid deliveries with one field removed, retyped or replaced; and arbitrary bytes."""
    base = json.loads(cloud_events(("Payment", "1", "created"), ("Invoice", "2", "voided")))

    @st.composite
    def mutated(draw: st.DrawFn) -> bytes:
        events = json.loads(json.dumps(base))
        event = events[draw(st.integers(0, len(events) - 1))]
        key = draw(st.sampled_from(EVENT_KEYS))
        action = draw(st.sampled_from(["drop", "replace"]))
        if action == "drop":
            event.pop(key, None)
        else:
            event[key] = draw(json_values)
        return json.dumps(events).encode()

    return st.one_of(
        mutated(),
        st.binary(max_size=300),
        json_values.map(lambda v: json.dumps(v).encode()),
    )


@FUZZ
@given(body=_mutations())
async def test_signed_garbage_never_crashes_and_is_only_queued_when_valid(
    stack: Stack, sessions: async_sessionmaker[AsyncSession], body: bytes
) -> None:
    """Signed by Intuit, so acknowledged (a refusal would block Intuit's queue): stored as
    events when it parses, otherwise kept raw as a dead letter; never queued as an event."""
    status, text = await _post(stack, body, {"intuit-signature": sign(body)})
    assert status == 200, text
    assert "Traceback" not in text
    async with sessions() as session:
        kept = (
            await session.execute(select(InboxEvent).where(InboxEvent.raw_body == body))
        ).scalar_one_or_none()
    try:
        parse_payload(body)
    except MalformedWebhook:
        assert kept is not None, "an unparseable signed body must be kept"
    if kept is not None:
        assert kept.status == "dead"
        assert kept.last_error.startswith("not stored as parsed: ")


@FUZZ
@given(
    body=_mutations() | st.just(cloud_events(("Payment", "9", "created"))),
    signature=st.one_of(
        st.none(),
        st.text(alphabet=string.ascii_letters + string.digits + "+/= -_.", max_size=60),
        st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()),
    ),
)
async def test_nothing_is_stored_without_a_valid_signature(
    stack: Stack, sessions: async_sessionmaker[AsyncSession], body: bytes, signature: str | None
) -> None:
    headers = {} if signature is None else {"intuit-signature": signature}
    status, text = await _post(stack, body, headers)
    assert status == 401, text
    assert await _stored(sessions) == 0


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(
            ["code", "state", "realmId", "error", "error_description", "redirect_uri", "next"]
        ),
        st.text(alphabet=string.printable, max_size=200),
        max_size=6,
    )
)
async def test_callback_always_lands_on_the_dashboard(stack: Stack, params: dict[str, str]) -> None:
    url = f"{stack.gateway_url}/v1/integrations/qbo/callback?{urlencode(params)}"
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, allow_redirects=False) as resp,
    ):
        assert resp.status == 302
        location = resp.headers["Location"]
    assert location.startswith(stack.dashboard_url + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["qbo"] == ["error"]
    assert query["reason"][0] in {
        "invalid_state",
        "expired_state",
        "state_already_used",
        "access_denied",
        "authorization_error",
        "missing_realm",
    }


@FUZZ
@given(tenant=st.text(max_size=300), actor=st.text(max_size=50), reason=st.text(max_size=50))
@example(tenant="acme", actor="a\x00b", reason="r")
@example(tenant="acme", actor="support", reason="nul\x00here")
@example(tenant="t\x00", actor="", reason="")
async def test_rpc_inputs_get_clear_errors_never_internal(
    stack: Stack, tenant: str, actor: str, reason: str
) -> None:
    async with internal_channel(stack.integration_addr, INTERNAL_TOKEN) as channel:
        calls: list[Awaitable[Any]] = [
            igrpc.IntegrationServiceStub(channel).GetConnectionStatus(
                pb.GetConnectionStatusRequest(tenant_id=tenant)
            ),
            igrpc.IntegrationServiceStub(channel).CreateConnectUrl(
                pb.CreateConnectUrlRequest(tenant_id=tenant, actor=actor)
            ),
            agrpc.AdminServiceStub(channel).SetTenantSettings(
                apb.SetTenantSettingsRequest(
                    tenant_id=tenant, qbo_enabled=False, actor=actor, reason=reason
                )
            ),
            igrpc.IntegrationServiceStub(channel).Disconnect(
                pb.DisconnectRequest(tenant_id=tenant, actor=actor, reason=reason)
            ),
        ]
        for call in calls:
            outcome = await _outcome(call)
            assert outcome[0] in {
                "OK",
                "INVALID_ARGUMENT",
                "NOT_FOUND",
                "FAILED_PRECONDITION",
            }, outcome
            assert outcome[0] == "OK" or outcome[1]


async def _outcome(call: Awaitable[Any]) -> tuple[str, str]:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code().name, exc.details() or ""
    return "OK", ""


@pytest.mark.parametrize("realm", [REALM_ID])
async def test_a_valid_delivery_after_the_fuzzing_still_works(stack: Stack, realm: str) -> None:
    body = cloud_events(("Payment", "42", "created"), realm=realm)
    status, text = await _post(stack, body, {"intuit-signature": sign(body)})
    assert status == 200
    assert json.loads(text)["stored"] == 1


# -- every RPC of every service validates its string and enum fields before any work -----

SERVICES: list[tuple[str, ServiceDescriptor]] = [
    ("integration", pb.DESCRIPTOR.services_by_name["IntegrationService"]),
    ("integration", apb.DESCRIPTOR.services_by_name["AdminService"]),
    ("matcher", mpb.DESCRIPTOR.services_by_name["MatchingService"]),
    ("matcher", mapb.DESCRIPTOR.services_by_name["MatchingAdminService"]),
]
# A (settable path, field named in the error) for each string and enum field of a request,
# nested messages and repeated fields included (one element each).
Target = tuple[tuple[str, ...], str, FieldDescriptor]


def _targets(message: Descriptor, prefix: tuple[str, ...] = (), shown: str = "") -> list[Target]:
    found: list[Target] = []
    if len(prefix) > 5:  # deep enough for every request in the contract; stops cycles
        return found
    for field in message.fields:
        repeated = field.is_repeated
        name = f"{shown}{field.name}" + ("[0]" if repeated else "")
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            # A map: its string keys are checked (named by the map field itself).
            key, value = (field.message_type.fields_by_name[n] for n in ("key", "value"))
            assert value.type not in (
                FieldDescriptor.TYPE_STRING,
                FieldDescriptor.TYPE_ENUM,
                FieldDescriptor.TYPE_MESSAGE,
            ), "a map with string, enum or message values: cover its values here too"
            if key.type == FieldDescriptor.TYPE_STRING:
                found.append(((*prefix, field.name), f"{shown}{field.name}", key))
        elif field.message_type is not None:
            found += _targets(field.message_type, (*prefix, field.name), f"{name}.")
        elif field.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_ENUM):
            found.append(((*prefix, field.name), name, field))
    return found


def _set(request: Any, path: tuple[str, ...], field: FieldDescriptor, value: Any) -> None:
    """Sets ``value`` at ``path``, adding one element to each repeated field on the way."""
    holder = request
    for part in path[:-1]:
        child = getattr(holder, part)
        holder = child.add() if hasattr(child, "add") else child
    entry = field.containing_type
    if entry is not None and entry.GetOptions().map_entry:  # a map key
        getattr(holder, path[-1])[value] = entry.fields_by_name["value"].default_value
    elif field.is_repeated:
        getattr(holder, path[-1]).append(value)
    else:
        setattr(holder, path[-1], value)


RPC_CASES = [
    (server, service, method, path, shown, field)
    for server, service in SERVICES
    for method in service.methods
    for path, shown, field in _targets(method.input_type)
]


def test_every_rpc_with_string_or_enum_fields_is_covered() -> None:
    methods = {(s.name, m.name) for _, s, m, *_ in RPC_CASES}
    every = {(s.name, m.name) for _, s in SERVICES for m in s.methods}
    without_fields = {
        (s.name, m.name) for _, s in SERVICES for m in s.methods if not _targets(m.input_type)
    }
    assert methods == every - without_fields
    assert ("IntegrationService", "SyncNow") in methods
    assert len(RPC_CASES) > 60


async def _call(
    channel: grpc.aio.Channel, name: str, encode: Any, request: Any, *, streaming: bool
) -> None:
    if streaming:
        async for _ in channel.unary_stream(name, encode, None)(request, timeout=10):
            pass
    else:
        await channel.unary_unary(name, encode, None)(request, timeout=10)


def _unknown(field: FieldDescriptor) -> st.SearchStrategy[int]:
    assert field.enum_type is not None
    known = set(field.enum_type.values_by_number)
    return st.integers(-(2**31), 2**31 - 1).filter(lambda v: v not in known)


@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_every_rpc_refuses_nul_and_unknown_enum_values_naming_the_field(
    stack: Stack, data: st.DataObject
) -> None:
    """Each RPC of both services, each string field with a NUL character in it and each enum
    field with a number its enum does not define: INVALID_ARGUMENT naming the field, before
    any work (never INTERNAL, never read as a default)."""
    addresses = {"integration": stack.integration_addr, "matcher": stack.matcher_addr}
    for server, service, method, path, shown, field in RPC_CASES:
        if field.type == FieldDescriptor.TYPE_ENUM:
            value: Any = data.draw(_unknown(field), label=shown)
        else:
            head, tail = data.draw(st.tuples(st.text(max_size=8), st.text(max_size=8)))
            value = f"{head}\x00{tail}"
        request = GetMessageClass(method.input_type)()
        _set(request, path, field, value)
        async with internal_channel(addresses[server], INTERNAL_TOKEN) as channel:
            name = f"/{service.full_name}/{method.name}"
            encode = type(request).SerializeToString
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await _call(channel, name, encode, request, streaming=method.server_streaming)
        where = f"{method.name} {shown}={value!r}"
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, where
        detail = error_info(info.value)
        assert detail is not None, where
        assert detail.metadata["field"] == shown, where

"""The plumbing of every emulator's control API under ``/_emulator/``: JSON in, JSON out.

Here: the error middleware, reading a JSON body and its fields, and the endpoints every
emulator has in the same shape (index, reset, stats, clock, faults, webhook deliveries).
A provider registers its state under :data:`CONTROLLED_KEY` and adds its own endpoints.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, Generic, Protocol, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from emulators.common import money
from emulators.common.clock import Clock
from emulators.common.faults import FaultBox, FaultError
from emulators.common.http import dumps, raw_json
from emulators.common.oauth import Client, ClientRegistry
from emulators.common.webhooks import Dispatcher

PREFIX: Final = "/_emulator"
JsonObject = dict[str, Any]


class Controlled(Protocol):
    """What the shared endpoints need from an emulator's state."""

    @property
    def clock(self) -> Clock: ...

    @property
    def faults(self) -> FaultBox[Any]: ...

    @property
    def webhooks(self) -> Dispatcher[Any]: ...

    def reset(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...


CONTROLLED_KEY = web.AppKey("aicollect_emulator_controlled", Controlled)
NAME_KEY = web.AppKey("aicollect_emulator_name", str)


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_response(body: Any, status: int = 200) -> web.Response:
    return raw_json(dumps(body), status)


def control_errors(translate: Callable[[Exception], web.Response | None]) -> Middleware:
    """Errors under ``/_emulator/`` as ``{"error": ...}``; ``translate`` renders the
    provider's own refusals (its bookkeeping errors) or returns None to let one through."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(PREFIX):
            return await handler(request)
        try:
            return await handler(request)
        except ControlError as exc:
            return json_response({"error": exc.message}, exc.status)
        except (FaultError, money.AmountError) as exc:
            return json_response({"error": str(exc)}, 400)
        except web.HTTPException:
            raise
        except Exception as exc:
            response = translate(exc)
            if response is None:
                raise
            return response

    return middleware


async def read_body(request: web.Request) -> JsonObject:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ControlError(400, f"the body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ControlError(400, "the body must be a JSON object")
    return data


def text(data: JsonObject, key: str, default: str = "") -> str:
    value = data.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ControlError(400, f"{key} must be a string")
    return str(value)


def required(data: JsonObject, key: str) -> str:
    value = text(data, key)
    if not value:
        raise ControlError(400, f"{key} is required")
    return value


def day(data: JsonObject, key: str) -> date | None:
    value = data.get(key)
    if value is None:
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise ControlError(400, f"{key} must be a date like 2026-01-31") from exc


def integer(data: JsonObject, key: str, default: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ControlError(400, f"{key} must be an integer")
    return value


def number(data: JsonObject, key: str, default: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ControlError(400, f"{key} must be a number")
    return float(value)


def string_list(data: JsonObject, key: str, default: list[str]) -> list[str]:
    value = data.get(key, default)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ControlError(400, f"{key} must be a list of strings")
    return list(value)


def controlled(request: web.Request) -> Controlled:
    return request.app[CONTROLLED_KEY]


# -- the shared endpoints -------------------------------------------------------------------


async def index(request: web.Request) -> web.Response:
    routes = sorted(
        {
            f"{route.method} {route.resource.canonical}"
            for route in request.app.router.routes()
            if route.resource is not None
            and route.resource.canonical.startswith(PREFIX)
            and route.method != "HEAD"
        }
    )
    return json_response({"emulator": request.app[NAME_KEY], "endpoints": routes})


async def reset(request: web.Request) -> web.Response:
    controlled(request).reset()
    return json_response({"reset": True})


async def stats(request: web.Request) -> web.Response:
    return json_response(controlled(request).stats())


async def get_clock(request: web.Request) -> web.Response:
    clock = controlled(request).clock
    return json_response({"now": clock.time(), "offset_seconds": clock.offset})


async def advance_clock(request: web.Request) -> web.Response:
    clock = controlled(request).clock
    data = await read_body(request)
    seconds = number(data, "advance_seconds", 0)
    if seconds < 0:
        raise ControlError(400, "advance_seconds must be >= 0: the clock only moves forward")
    clock.advance(seconds)
    return json_response({"now": clock.time(), "offset_seconds": clock.offset})


async def get_faults(request: web.Request) -> web.Response:
    return json_response(controlled(request).faults.status())


async def set_faults(request: web.Request) -> web.Response:
    box = controlled(request).faults
    box.update(await read_body(request))
    return json_response(box.status())


async def clear_faults(request: web.Request) -> web.Response:
    box = controlled(request).faults
    box.reset()
    return json_response(box.status())


async def deliveries(request: web.Request) -> web.Response:
    webhooks = controlled(request).webhooks
    try:
        since = int(request.query.get("since", "0"))
    except ValueError as exc:
        raise ControlError(400, "since must be an integer (a delivery seq)") from exc
    return json_response(
        {
            "deliveries": webhooks.entries(request.query.get("client_id"), since),
            "dropped": list(webhooks.dropped),
        }
    )


async def webhook_status(request: web.Request) -> web.Response:
    return json_response(controlled(request).webhooks.status())


async def webhook_wait(request: web.Request) -> web.Response:
    """Block until every queued webhook is delivered (or ``timeout`` seconds pass)."""
    webhooks = controlled(request).webhooks
    data = await read_body(request)
    limit = number(data, "timeout", 10.0)
    try:
        async with asyncio.timeout(limit):
            await webhooks.wait_idle()
    except TimeoutError as exc:
        raise ControlError(504, "webhooks still pending") from exc
    return json_response(webhooks.status())


def add_common_routes(app: web.Application, state: Controlled, name: str) -> None:
    app[CONTROLLED_KEY] = state
    app[NAME_KEY] = name
    r = app.router
    p = PREFIX
    r.add_get(f"{p}/", index)
    r.add_get(p, index)
    r.add_post(f"{p}/reset", reset)
    r.add_get(f"{p}/stats", stats)
    r.add_get(f"{p}/clock", get_clock)
    r.add_post(f"{p}/clock", advance_clock)
    r.add_get(f"{p}/faults", get_faults)
    r.add_put(f"{p}/faults", set_faults)
    r.add_patch(f"{p}/faults", set_faults)
    r.add_post(f"{p}/faults", set_faults)
    r.add_delete(f"{p}/faults", clear_faults)
    r.add_get(f"{p}/deliveries", deliveries)
    r.add_get(f"{p}/webhooks", webhook_status)
    r.add_post(f"{p}/webhooks/wait", webhook_wait)


# -- apps (the developer portal) ------------------------------------------------------------


class PortalApp(Client, Protocol):
    def to_json(self) -> dict[str, Any]: ...


A = TypeVar("A", bound=PortalApp)


@dataclass(frozen=True, slots=True)
class AppAdmin(Generic[A]):
    """``/_emulator/apps``: register, read, change and delete apps.  ``build(data,
    existing)`` makes an app from JSON (keeping what ``data`` does not name);
    ``forget(request, app)`` ends what the app had (grants, connections) before it goes."""

    registry: Callable[[web.Request], ClientRegistry[A]]
    build: Callable[[JsonObject, A | None], A]
    forget: Callable[[web.Request, A], None]

    def known(self, request: web.Request, client_id: str) -> A:
        app = self.registry(request).apps.get(client_id)
        if app is None:
            raise ControlError(404, f"no app with client_id {client_id}")
        return app

    async def list(self, request: web.Request) -> web.Response:
        apps = self.registry(request).apps.values()
        return json_response({"apps": [a.to_json() for a in apps]})

    async def upsert(self, request: web.Request) -> web.Response:
        """Register an app, or update the one with that client_id (fields not given kept)."""
        registry = self.registry(request)
        data = await read_body(request)
        existing = registry.apps.get(text(data, "client_id"))
        app = registry.register(self.build(data, existing))
        return json_response(app.to_json(), 200 if existing else 201)

    async def get(self, request: web.Request) -> web.Response:
        return json_response(self.known(request, request.match_info["client_id"]).to_json())

    async def patch(self, request: web.Request) -> web.Response:
        existing = self.known(request, request.match_info["client_id"])
        data = await read_body(request)
        data["client_id"] = existing.client_id
        return json_response(self.registry(request).register(self.build(data, existing)).to_json())

    async def delete(self, request: web.Request) -> web.Response:
        app = self.known(request, request.match_info["client_id"])
        self.forget(request, app)
        del self.registry(request).apps[app.client_id]
        return json_response({"deleted": app.client_id})

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get(f"{PREFIX}/apps", self.list)
        r.add_post(f"{PREFIX}/apps", self.upsert)
        r.add_get(f"{PREFIX}/apps/{{client_id}}", self.get)
        r.add_patch(f"{PREFIX}/apps/{{client_id}}", self.patch)
        r.add_delete(f"{PREFIX}/apps/{{client_id}}", self.delete)


# -- tenants (companies, organisations) -----------------------------------------------------


class Tenant(Protocol):
    name: str

    def set_timezone(self, name: str) -> None: ...

    def set_today(self, day: date) -> None: ...


T = TypeVar("T")


def create_tenant(taken: bool, what: str, create: Callable[[], T]) -> T:
    """``create()``, with 409 when the id asked for is ``taken`` and 400 for a bad spec."""
    if taken:
        raise ControlError(409, f"{what} exists")
    try:
        return create()
    except ValueError as exc:
        raise ControlError(400, str(exc)) from exc


def patch_tenant(tenant: Tenant, data: JsonObject) -> None:
    """Rename, move to another time zone, or pin today."""
    if "name" in data:
        tenant.name = required(data, "name")
    if "timezone" in data:
        try:
            tenant.set_timezone(required(data, "timezone"))
        except ValueError as exc:
            raise ControlError(400, str(exc)) from exc
    today = day(data, "today")
    if today is not None:
        tenant.set_today(today)


# -- settings (the configuration's run-time knobs) ------------------------------------------

Setting = Callable[[JsonObject, str], Any]


def positive_int(data: JsonObject, key: str) -> int:
    value = integer(data, key, 0)
    if value < 1:
        raise ControlError(400, f"{key} must be >= 1")
    return value


def flag(data: JsonObject, key: str) -> bool:
    value = data[key]
    if not isinstance(value, bool):
        raise ControlError(400, f"{key} must be true or false")
    return value


def seconds(data: JsonObject, key: str) -> float:
    value = number(data, key, 0)
    if value <= 0:
        raise ControlError(400, f"{key} must be positive")
    return value


def seconds_or_zero(data: JsonObject, key: str) -> float:
    value = number(data, key, 0)
    if value < 0:
        raise ControlError(400, f"{key} must be >= 0")
    return value


def choice(*allowed: str) -> Setting:
    def read(data: JsonObject, key: str) -> str:
        if data[key] not in allowed:
            raise ControlError(400, f"{key} must be one of {list(allowed)}")
        return str(data[key])

    return read


@dataclass(frozen=True, slots=True)
class SettingsAdmin:
    """``GET``/``PATCH /_emulator/settings``: the named configuration attributes, each read
    by its :data:`Setting`; all or nothing; ``applied(request)`` runs after a change."""

    config: Callable[[web.Request], object]
    settings: dict[str, Setting]
    applied: Callable[[web.Request], None]

    def _json(self, request: web.Request) -> JsonObject:
        config = self.config(request)
        return {name: getattr(config, name) for name in self.settings}

    async def get(self, request: web.Request) -> web.Response:
        return json_response(self._json(request))

    async def update(self, request: web.Request) -> web.Response:
        data = await read_body(request)
        for key in data:
            if key not in self.settings:
                names = list(self.settings)
                raise ControlError(400, f"unknown setting {key!r}; settings are {names}")
        changes = {key: self.settings[key](data, key) for key in data}
        config = self.config(request)
        for key, value in changes.items():
            setattr(config, key, value)
        self.applied(request)
        return json_response(self._json(request))

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(f"{PREFIX}/settings", self.get)
        app.router.add_patch(f"{PREFIX}/settings", self.update)

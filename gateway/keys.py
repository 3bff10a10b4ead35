"""Typed keys of the gateway's application and request storage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
from aiohttp import web

from aicollect.settings import Settings

if TYPE_CHECKING:
    from gateway.app import GatewayMetrics


@dataclass
class Backends:
    """gRPC channels to the services behind the gateway."""

    integration: grpc.aio.Channel
    matcher: grpc.aio.Channel


SETTINGS = web.AppKey("settings", Settings)
BACKENDS = web.AppKey("backends", Backends)
METRICS: web.AppKey[GatewayMetrics] = web.AppKey("metrics")
REQUEST_ID = web.RequestKey("request_id", str)

"""Typed keys of the gateway's application and request storage."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from aiohttp import web

from aicollect.settings import Settings
from gateway.metrics import GatewayMetrics


@dataclass
class Backends:
    """gRPC channels to the services behind the gateway."""

    integration: grpc.aio.Channel
    matcher: grpc.aio.Channel


SETTINGS = web.AppKey("settings", Settings)
BACKENDS = web.AppKey("backends", Backends)
METRICS = web.AppKey("metrics", GatewayMetrics)
REQUEST_ID = web.RequestKey("request_id", str)

"""The gateway's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class GatewayMetrics:
    """Prometheus metrics of one gateway app (own registry, so tests can build many apps)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "aicollect_http_requests_total",
            "HTTP requests by route and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "aicollect_http_request_seconds",
            "HTTP request latency by route.",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.webhooks = Counter(
            "aicollect_webhook_requests_total",
            "Intuit webhook deliveries by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.webhook_events = Counter(
            "aicollect_webhook_events_total",
            "Webhook events by what the inbox did with them.",
            ["kind"],
            registry=self.registry,
        )

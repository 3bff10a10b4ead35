"""Prometheus metrics of the integration process (each instance owns its registry, so tests
can build many; the process serves its registry on ``AICOLLECT_METRICS_PORT``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from aicollect.db.retention import purged_counter

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class IntegrationMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.intuit_requests = Counter(
            "aicollect_intuit_requests_total",
            "Calls to Intuit by endpoint and HTTP status (0 = no answer).",
            ["endpoint", "status"],
            registry=r,
        )
        self.intuit_latency = Histogram(
            "aicollect_intuit_request_seconds",
            "Latency of calls to Intuit by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.intuit_throttled = Counter(
            "aicollect_intuit_throttled_total", "429 answers from Intuit.", registry=r
        )
        self.token_refreshes = Counter(
            "aicollect_token_refreshes_total",
            "Access-token refreshes by outcome (ok, invalid_grant, unavailable, error).",
            ["outcome"],
            registry=r,
        )
        self.inbox_depth = Gauge(
            "aicollect_inbox_depth", "Webhook events waiting to be processed.", registry=r
        )
        self.inbox_oldest_age = Gauge(
            "aicollect_inbox_oldest_age_seconds",
            "Age of the oldest waiting webhook event.",
            registry=r,
        )
        self.dead_letters = Gauge(
            "aicollect_inbox_dead_letters", "Webhook events parked as dead letters.", registry=r
        )
        self.connections = Gauge(
            "aicollect_connections",
            "Connections by stored state (connected, needs_reauthorization, disconnected).",
            ["state"],
            registry=r,
        )
        self.retention_purged = purged_counter(r)
        self.inbox_processed = Counter(
            "aicollect_inbox_events_processed_total",
            "Webhook events settled by the inbox workers, by result.",
            ["result"],
            registry=r,
        )
        self.webhook_to_decision = Histogram(
            "aicollect_webhook_to_decision_seconds",
            "From receiving a webhook to the matcher's decision on it.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.match_outcomes = Counter(
            "aicollect_match_outcomes_total",
            "Matcher decisions on QBO changes, by outcome (rule of the decision table).",
            ["outcome"],
            registry=r,
        )
        # Read at each scrape; empty until the process's budgets are wired in.
        self._budget_queues = _BudgetQueues(dict)
        r.register(self._budget_queues)

    def watch_budget_queues(self, read: Callable[[], Mapping[tuple[str, str], int]]) -> None:
        """``aicollect_request_budget_waiting{provider, priority}``: the calls of this process
        waiting for a platform's request budget, read at each scrape from ``read`` (a count
        by provider and priority name). Payments waiting here are payments not yet read."""
        self._budget_queues.read = read

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Serves ``/metrics`` from a background thread (Prometheus text format)."""
        start_http_server(port, addr=host, registry=self.registry)


class _BudgetQueues(Collector):
    def __init__(self, read: Callable[[], Mapping[tuple[str, str], int]]) -> None:
        self.read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "aicollect_request_budget_waiting",
            "Calls of this process waiting for a platform's per-company request budget, "
            "by provider and priority.",
            labels=["provider", "priority"],
        )
        for (provider, priority), count in sorted(self.read().items()):
            family.add_metric([provider, priority], count)
        yield family

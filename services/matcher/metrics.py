"""The matcher's Prometheus metrics: decisions by outcome, decision latency, and the
outreach stream's consumers and how far the slowest is behind the outbox."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from aicollect.db.retention import purged_counter
from services.matcher.domain import Decision, ReportTrigger

DECISION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
REPORT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class StreamPositions:
    """Where each open outreach stream stands against the newest outbox id."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._behind: dict[int, int] = {}

    def open(self) -> int:
        key = next(self._ids)
        self._behind[key] = 0
        return key

    def update(self, key: int, delivered: int, newest: int | None) -> None:
        if key in self._behind:
            self._behind[key] = max(0, (newest or 0) - delivered)

    def close(self, key: int) -> None:
        self._behind.pop(key, None)

    def consumers(self) -> int:
        return len(self._behind)

    def max_lag(self) -> int:
        return max(self._behind.values(), default=0)


class MatcherMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.decisions = Counter(
            "aicollect_matcher_decisions_total",
            "Decisions on placements, by the call that caused them and the outcome (the row of"
            " the matching table).",
            ["call", "outcome"],
            registry=r,
        )
        self.decision_seconds = Histogram(
            "aicollect_matcher_decision_seconds",
            "Time to decide and commit one call's decisions, by call.",
            ["call"],
            buckets=DECISION_BUCKETS,
            registry=r,
        )
        self.changes_per_set = Histogram(
            "aicollect_matcher_changes_per_set",
            "Accounting changes decided together in one ApplyAccountingChanges call (one"
            " transaction); near 1 under light load, larger as the inbox batches more.",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
            registry=r,
        )
        self.retention_purged = purged_counter(r)
        self.reports_generated = Counter(
            "aicollect_daily_reports_generated_total",
            "Daily reconciliation reports stored, by trigger (schedule or regenerate).",
            ["trigger"],
            registry=r,
        )
        self.report_seconds = Histogram(
            "aicollect_daily_report_generation_seconds",
            "Time to compute and store one daily report.",
            buckets=REPORT_BUCKETS,
            registry=r,
        )
        self.report_failures = Counter(
            "aicollect_daily_report_failures_total",
            "Scheduled daily reports that failed (retried at the scheduler's next round).",
            registry=r,
        )
        self.reports_due = Gauge(
            "aicollect_daily_reports_due",
            "Reports due but not stored at the end of the scheduler's last round on this"
            " process (0 once caught up).",
            registry=r,
        )
        for trigger in ReportTrigger:
            self.reports_generated.labels(trigger.value)
        self.streams = StreamPositions()
        consumers = Gauge(
            "aicollect_outreach_stream_consumers",
            "Open StreamOutreachEvents calls on this process.",
            registry=r,
        )
        consumers.set_function(lambda: float(self.streams.consumers()))
        lag = Gauge(
            "aicollect_outreach_stream_lag_events",
            "Outbox events the slowest open stream on this process has not yet been sent.",
            registry=r,
        )
        lag.set_function(lambda: float(self.streams.max_lag()))

    def decided(self, call: str, decisions: Iterable[Decision], seconds: float) -> None:
        self.decision_seconds.labels(call).observe(seconds)
        for decision in decisions:
            self.decisions.labels(call, decision.outcome.value).inc()

    def report_generated(self, trigger: ReportTrigger, seconds: float) -> None:
        self.reports_generated.labels(trigger.value).inc()
        self.report_seconds.observe(seconds)

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serves ``/metrics`` from a background thread (Prometheus text format); returns
        the port bound (``port`` 0 binds a free one)."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_port)

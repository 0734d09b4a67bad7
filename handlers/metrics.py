"""Prometheus metrics, read from the run service when scraped."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from domain.runs import RunService


class _RunCollector:
    def __init__(self, service: RunService) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        stats = self._service.stats
        active = GaugeMetricFamily("agent_gateway_active_runs", "Runs in progress")
        active.add_metric([], self._service.active_count)
        yield active
        started = CounterMetricFamily("agent_gateway_runs_started", "Runs started")
        started.add_metric([], stats.started)
        yield started
        finished = CounterMetricFamily(
            "agent_gateway_runs_finished", "Runs finished, by status", labels=["status"]
        )
        for status, count in sorted(stats.finished.items()):
            finished.add_metric([status], count)
        yield finished


class Metrics:
    """A registry of its own per app, so two apps in one process do not collide."""

    def __init__(self, service: RunService) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_RunCollector(service))  # type: ignore[arg-type]

    def render(self) -> bytes:
        return generate_latest(self.registry)

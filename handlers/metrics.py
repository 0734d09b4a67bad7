"""Prometheus metrics, read from the run service's counters when scraped."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from domain.runs import RunService
from domain.stats import Histogram

PREFIX = "agent_gateway_"


def _histogram(name: str, help_text: str, labels: list[str]) -> HistogramMetricFamily:
    return HistogramMetricFamily(PREFIX + name, help_text, labels=labels)


def _add(family: HistogramMetricFamily, labels: list[str], histogram: Histogram) -> None:
    buckets = [(str(bound), count) for bound, count in histogram.cumulative()]
    buckets[-1] = ("+Inf", buckets[-1][1])
    family.add_metric(labels, buckets, histogram.total)


class _GatewayCollector:
    def __init__(self, service: RunService) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        stats = self._service.stats
        yield GaugeMetricFamily(
            PREFIX + "active_runs", "Runs in progress on this replica", self._service.active_count
        )
        started = CounterMetricFamily(
            PREFIX + "runs_started", "Runs started, by provider", labels=["provider"]
        )
        for provider, count in sorted(stats.runs_started.items()):
            started.add_metric([provider], count)
        yield started
        finished = CounterMetricFamily(
            PREFIX + "runs_finished",
            "Runs finished, by provider and status",
            labels=["provider", "status"],
        )
        for (provider, status), count in sorted(stats.runs_finished.items()):
            finished.add_metric([provider, status], count)
        yield finished
        durations = _histogram("run_duration_seconds", "Run duration, by provider", ["provider"])
        for provider, histogram in sorted(stats.run_seconds.items()):
            _add(durations, [provider], histogram)
        yield durations
        yield CounterMetricFamily(
            PREFIX + "runs_queued", "Runs that waited in the queue", stats.runs_queued
        )
        ended = CounterMetricFamily(
            PREFIX + "runs_ended_in_queue",
            "Runs that ended before they left the queue, by status",
            labels=["status"],
        )
        for status, count in sorted(stats.ended_in_queue.items()):
            ended.add_metric([status], count)
        yield ended
        yield CounterMetricFamily(PREFIX + "cancels", "Runs stopped by a cancel", stats.cancels)
        stop = _histogram("cancel_stop_seconds", "From a cancel request to the agent's stop", [])
        _add(stop, [], stats.stop_seconds)
        yield stop
        errors = CounterMetricFamily(
            PREFIX + "upstream_errors",
            "Provider failures: refused starts, errors reported or raised mid-run",
            labels=["provider"],
        )
        for provider, count in sorted(stats.upstream_errors.items()):
            errors.add_metric([provider], count)
        yield errors
        yield CounterMetricFamily(
            PREFIX + "events_published", "Events published to streams", stats.events_published
        )
        yield CounterMetricFamily(
            PREFIX + "events_delivered",
            "Events handed to SSE subscribers",
            stats.events_delivered,
        )
        yield CounterMetricFamily(
            PREFIX + "redactions",
            "Credential values replaced by *** in what runs sent out (counted at their end)",
            stats.redactions,
        )
        yield GaugeMetricFamily(
            PREFIX + "sse_subscribers", "Open event streams on this replica", stats.subscribers
        )
        yield CounterMetricFamily(
            PREFIX + "slow_subscriber_disconnects",
            "Subscribers disconnected for falling behind or not reading",
            stats.slow_disconnects,
        )


class Metrics:
    """A registry of its own per app, so two apps in one process do not collide."""

    def __init__(self, service: RunService) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_GatewayCollector(service))  # type: ignore[arg-type]

    def render(self) -> bytes:
        return generate_latest(self.registry)

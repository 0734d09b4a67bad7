"""What the gateway counts while it works; the metrics endpoint reads it when scraped.

Plain counters on one event loop: no locks, nothing that formats or exports."""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field

# Seconds. Runs last from under a second (an API answer) to hours (an agent session).
RUN_SECONDS_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)
# Seconds from a cancel request to the agent's stop: grace periods are 5 s + 5 s by default.
STOP_SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Histogram:
    """Observations counted into buckets by upper bound, plus their sum."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= it), ending with (+inf, all)."""
        result, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            result.append((bound, running))
        return result


@dataclass(slots=True)
class GatewayStats:
    runs_started: Counter[str] = field(default_factory=Counter)  # by provider
    runs_finished: Counter[tuple[str, str]] = field(default_factory=Counter)  # provider, status
    run_seconds: dict[str, Histogram] = field(default_factory=dict)  # by provider
    runs_queued: int = 0  # runs that waited in the queue
    ended_in_queue: Counter[str] = field(default_factory=Counter)  # by status: never ran
    cancels: int = 0
    stop_seconds: Histogram = field(default_factory=lambda: Histogram(STOP_SECONDS_BUCKETS))
    upstream_errors: Counter[str] = field(default_factory=Counter)  # by provider
    events_published: int = 0
    redactions: int = 0  # credential values replaced in what went out
    events_delivered: int = 0
    subscribers: int = 0  # open event streams right now
    slow_disconnects: int = 0

    def run_finished(self, provider: str, status: str, seconds: float) -> None:
        self.runs_finished[provider, status] += 1
        histogram = self.run_seconds.get(provider)
        if histogram is None:
            histogram = self.run_seconds[provider] = Histogram(RUN_SECONDS_BUCKETS)
        histogram.observe(seconds)

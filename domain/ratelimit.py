"""Request rate per caller: one token bucket each."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable


class TokenBuckets:
    """Each caller may make `burst` requests at once and `rate_per_s` a second after that.

    At most `max_callers` buckets are kept; past that, the least recently seen caller's
    bucket is forgotten (it comes back full, which only ever errs on the generous side)."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        max_callers: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._max_callers = max_callers
        self._monotonic = monotonic
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def take(self, caller: str) -> float:
        """Takes one token: 0 if there was one, else the seconds until there will be."""
        now = self._monotonic()
        tokens, at = self._buckets.pop(caller, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self._rate
        self._buckets[caller] = (tokens, now)
        if len(self._buckets) > self._max_callers:
            self._buckets.popitem(last=False)
        return wait


def retry_after_s(wait: float) -> int:
    """Whole seconds for a Retry-After header, never 0."""
    return max(1, math.ceil(wait))

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    """Time, for everything that waits or stamps: run timeouts, leases, key reloads.

    Guarantees: `now` is timezone-aware UTC; `monotonic` never goes backwards; `sleep`
    returns once `monotonic` has advanced by at least `seconds` (and is cancellable)."""

    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

"""A clock that moves only when the test says so."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta


class FakeClock:
    """Clock whose time stands still until `advance`; sleepers wake when their time comes."""

    def __init__(self, start: datetime = datetime(2026, 1, 1, tzinfo=UTC)) -> None:
        self._start = start
        self._elapsed = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        return 1000.0 + self._elapsed

    async def sleep(self, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._elapsed + seconds, future))
        await future

    async def advance(self, seconds: float) -> None:
        """Lets what is running reach its sleeps, moves time on, wakes every sleeper that is
        due, and lets them run."""
        await settle()
        self._elapsed += seconds
        due = [f for at, f in self._sleepers if at <= self._elapsed]
        self._sleepers = [(at, f) for at, f in self._sleepers if at > self._elapsed]
        for future in due:
            if not future.done():
                future.set_result(None)
        await settle()


async def settle() -> None:
    """A few turns of the event loop: what was woken, or started, gets to act."""
    for _ in range(10):
        await asyncio.sleep(0)

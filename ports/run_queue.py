from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Protocol

from domain.model import QueuedRun, WaitingRun


class RunQueue(Protocol):
    """Runs waiting for capacity, shared by every replica of a deployment that shares it.

    The fair order, which every implementation keeps: higher priority first; at equal
    priority, projects take turns (each entry gets its project's next round, never earlier
    than the round being taken now, and rounds are served in order); first in, first out
    within a project. So a project with 1,000 waiting runs delays another project's single
    run by at most one start.

    Guarantees:
    - `push` adds the entry and returns its position (1 = next); past `max_queued` waiting
      runs it adds nothing and raises QueueFull.
    - `take` removes and returns the first entry in fair order whose project is not in
      `busy_projects`, or None. `remove` removes the entry of `run_id` and returns it, or
      None. Each entry is returned by exactly one `take` or `remove`, across replicas.
    - `listing` is every waiting entry in fair order; `count` how many there are;
      `expired(now)` the ids of entries whose deadline has passed (still waiting).
    - `wait_for_push(timeout_s)` returns when an entry was pushed (by any replica sharing
      the queue) since the last call, or after `timeout_s`.
    - `outlives_process`: whether waiting runs survive this process (shared storage).
    """

    outlives_process: bool

    async def push(self, entry: QueuedRun, max_queued: int) -> int: ...

    async def take(self, busy_projects: Collection[str]) -> QueuedRun | None: ...

    async def remove(self, run_id: str) -> QueuedRun | None: ...

    async def listing(self) -> list[WaitingRun]: ...

    async def count(self) -> int: ...

    async def expired(self, now: datetime) -> list[str]: ...

    async def wait_for_push(self, timeout_s: float) -> None: ...

"""The run queue in process memory: one replica's, lost on restart (waiting runs are then
ended by the service at shutdown)."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
from collections.abc import Collection
from datetime import datetime

from domain.errors import QueueFull
from domain.model import QueuedRun, WaitingRun

# (-priority, round, seq): sorting by it is the fair order of ports/run_queue.py.
SortKey = tuple[int, int, int]


class MemoryRunQueue:
    """RunQueue kept as one sorted list: 10,000 entries cost a few microseconds of memmove
    per push or take, and `listing` needs no sort."""

    outlives_process = False

    def __init__(self) -> None:
        self._order: list[tuple[SortKey, str]] = []
        self._entries: dict[str, tuple[SortKey, QueuedRun]] = {}
        # Per priority: the round being served, each project's next round, and how many wait.
        self._serving: dict[int, int] = {}
        self._next_round: dict[int, dict[str, int]] = {}
        self._waiting: dict[int, int] = {}
        self._seq = 0
        self._pushed = asyncio.Event()

    async def push(self, entry: QueuedRun, max_queued: int) -> int:
        if len(self._order) >= max_queued:
            raise QueueFull(max_queued)
        priority, project_id = entry.priority, entry.project_id
        rounds = self._next_round.setdefault(priority, {})
        round_ = max(self._serving.get(priority, 0), rounds.get(project_id, 0))
        rounds[project_id] = round_ + 1
        self._waiting[priority] = self._waiting.get(priority, 0) + 1
        self._seq += 1
        key = (-priority, round_, self._seq)
        item = (key, entry.run_id)
        position = bisect.bisect(self._order, item)
        self._order.insert(position, item)
        self._entries[entry.run_id] = (key, entry)
        self._pushed.set()
        return position + 1

    async def take(self, busy_projects: Collection[str]) -> QueuedRun | None:
        for index, (_, run_id) in enumerate(self._order):
            entry = self._entries[run_id][1]
            if entry.project_id not in busy_projects:
                del self._order[index]
                return self._forget(run_id, served=True)
        return None

    async def remove(self, run_id: str) -> QueuedRun | None:
        found = self._entries.get(run_id)
        if found is None:
            return None
        del self._order[bisect.bisect_left(self._order, (found[0], run_id))]
        return self._forget(run_id, served=False)

    def _forget(self, run_id: str, served: bool) -> QueuedRun:
        (_, round_, _), entry = self._entries.pop(run_id)
        priority = entry.priority
        if served:
            self._serving[priority] = max(self._serving.get(priority, 0), round_)
        self._waiting[priority] -= 1
        if not self._waiting[priority]:  # nothing waits at this priority: rounds start over
            del self._waiting[priority], self._next_round[priority]
            self._serving.pop(priority, None)
        return entry

    async def listing(self) -> list[WaitingRun]:
        return [self._entries[run_id][1].waiting() for _, run_id in self._order]

    async def count(self) -> int:
        return len(self._order)

    async def expired(self, now: datetime) -> list[str]:
        return [
            entry.run_id
            for _, entry in self._entries.values()
            if entry.deadline is not None and entry.deadline <= now
        ]

    async def wait_for_push(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._pushed.wait(), timeout_s)
        self._pushed.clear()

"""The runs this replica drives: each with its agent's execution and how it is stopping."""

from __future__ import annotations

import asyncio
import enum
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from domain.model import AgentRequest, Run
from ports.code_agent import AgentRun


class StopReason(enum.Enum):
    CANCELLED = "cancelled by request"
    TIMED_OUT = "run timed out"
    SHUTDOWN = "gateway shutting down"


@dataclass(eq=False, slots=True)
class ActiveRun:
    """One running run. `finished` is set once its `done` is published (or could not be)."""

    run: Run
    execution: AgentRun
    request: AgentRequest
    stop_reason: StopReason | None = None
    stop_requested_at: float | None = None  # Clock.monotonic
    stopping: asyncio.Task[None] | None = None  # held, so the stop task is never collected
    driver: asyncio.Task[None] | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)


class ActiveRuns:
    """Runs driven by this replica, by run id. All methods run on one event loop."""

    def __init__(self) -> None:
        self._runs: dict[str, ActiveRun] = {}
        self._by_project: Counter[str] = Counter()  # checked at every start: no scan

    def add(self, active: ActiveRun) -> None:
        self._runs[active.run.run_id] = active
        self._by_project[active.run.project_id] += 1

    def remove(self, run_id: str) -> None:
        active = self._runs.pop(run_id, None)
        if active is not None:
            project_id = active.run.project_id
            self._by_project[project_id] -= 1
            if not self._by_project[project_id]:
                del self._by_project[project_id]

    def get(self, run_id: str) -> ActiveRun | None:
        return self._runs.get(run_id)

    def ids(self) -> list[str]:
        return list(self._runs)

    def in_project(self, project_id: str) -> int:
        return self._by_project[project_id]

    def __len__(self) -> int:
        return len(self._runs)

    def __iter__(self) -> Iterator[ActiveRun]:
        return iter(list(self._runs.values()))

"""The runs this replica drives: each with its agent's execution and how it is stopping."""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from domain.model import AgentRequest, InputRequestEvent, Run
from domain.redaction import EventRedaction
from ports.code_agent import AgentRun


class StopReason(enum.Enum):
    CANCELLED = "cancelled by request"
    TIMED_OUT = "run timed out"
    SHUTDOWN = "gateway shutting down"


@dataclass(eq=False, slots=True)
class ActiveRun:
    """One running run. `finished` is set once its `done` is published (or could not be)."""

    run: Run
    provider: str
    execution: AgentRun
    request: AgentRequest
    redaction: EventRedaction  # what its events go through before they are published
    stop_reason: StopReason | None = None
    stop_requested_at: float | None = None  # Clock.monotonic
    stopping: asyncio.Task[None] | None = None  # held, so the stop task is never collected
    driver: asyncio.Task[None] | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    # An interactive run's state (domain/runs/interaction.py): the open requests by id,
    # their timeout tasks (and the idle one, as "idle"), and the turns asked for: the
    # prompt and each message sent (a turn runs while fewer turns have ended).
    pending: dict[str, InputRequestEvent] = field(default_factory=dict)
    timers: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    turns_asked: int = 1
    ending: bool = False  # its final record is being written: nothing may overwrite it

    @property
    def turn_running(self) -> bool:
        """A message sent with `now` interrupts a turn: that turn's end comes after the
        message was sent, and the message's own turn still runs."""
        return self.turns_asked > self.run.turns


class ActiveRuns:
    """Runs driven by this replica, by run id, and the runs whose agent is starting (they
    count against the limits already). `freed` is set whenever a run leaves, for whoever
    waits for room (the queue). All methods run on one event loop."""

    def __init__(self) -> None:
        self._runs: dict[str, ActiveRun] = {}
        self._starting: dict[str, str] = {}  # run id -> project id
        self._cancel_asked: set[str] = set()  # of starting runs
        self._by_project: Counter[str] = Counter()  # active and starting: no scan per start
        self.freed = asyncio.Event()

    def add(self, active: ActiveRun) -> None:
        self._runs[active.run.run_id] = active
        self._by_project[active.run.project_id] += 1

    def remove(self, run_id: str) -> None:
        active = self._runs.pop(run_id, None)
        if active is not None:
            self._uncount(active.run.project_id)

    def reserve(self, run_id: str, project_id: str) -> None:
        """Counts a run whose agent is starting, until `unreserve` (once it runs, or failed
        to start)."""
        self._starting[run_id] = project_id
        self._by_project[project_id] += 1

    def unreserve(self, run_id: str) -> None:
        project_id = self._starting.pop(run_id)
        self._cancel_asked.discard(run_id)
        self._uncount(project_id)

    @contextlib.contextmanager
    def reserved(self, run_id: str, project_id: str) -> Iterator[None]:
        self.reserve(run_id, project_id)
        try:
            yield
        finally:
            self.unreserve(run_id)

    def _uncount(self, project_id: str) -> None:
        self._by_project[project_id] -= 1
        if not self._by_project[project_id]:
            del self._by_project[project_id]
        self.freed.set()

    def ask_cancel(self, run_id: str) -> bool:
        """Marks a starting run to be stopped as soon as it runs; False if none starts."""
        if run_id not in self._starting:
            return False
        self._cancel_asked.add(run_id)
        return True

    def cancel_asked(self, run_id: str) -> bool:
        return run_id in self._cancel_asked

    def get(self, run_id: str) -> ActiveRun | None:
        return self._runs.get(run_id)

    def ids(self) -> list[str]:
        return list(self._runs)

    def occupied(self, project_id: str | None = None) -> int:
        """Runs running or starting, in all or in one project."""
        if project_id is None:
            return len(self._runs) + len(self._starting)
        return self._by_project[project_id]

    def projects_at(self, limit: int) -> set[str]:
        return {project for project, count in self._by_project.items() if count >= limit}

    def __len__(self) -> int:
        return len(self._runs)

    def __iter__(self) -> Iterator[ActiveRun]:
        return iter(list(self._runs.values()))

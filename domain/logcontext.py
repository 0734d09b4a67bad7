"""Which run the current code works for, so every log line of a run can name it.

A context variable: the task that drives a run (and everything it awaits) sees its own
value; the log formatter in handlers reads it."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RunContext:
    run_id: str
    project_id: str


_current: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar(
    "agent_gateway_run", default=None
)


def bind_run(run_id: str, project_id: str) -> None:
    """From here on, in this task and the tasks it creates, log lines name this run."""
    _current.set(RunContext(run_id, project_id))


def current_run() -> RunContext | None:
    return _current.get()


@contextlib.contextmanager
def working_for(run_id: str, project_id: str) -> Iterator[None]:
    """Log lines name this run inside the block only (for tasks that serve many runs)."""
    token = _current.set(RunContext(run_id, project_id))
    try:
        yield
    finally:
        _current.reset(token)

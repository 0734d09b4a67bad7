from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol


class RunControl(Protocol):
    """Commands to runs owned by other replicas (a run's agent lives in one process).

    Guarantees: `request_cancel` delivers the run id to every replica's `serve` handler that
    is running at that moment (at most once each; a replica that is down misses it, and the
    caller finds out by waiting for the run's `done`). `serve` runs until cancelled."""

    async def request_cancel(self, run_id: str) -> None: ...

    async def serve(self, on_cancel: Callable[[str], Awaitable[None]]) -> None: ...

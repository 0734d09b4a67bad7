from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from domain.model import AgentInput

InputHandler = Callable[[str, AgentInput, str | None], Awaitable[None]]


class RunControl(Protocol):
    """What replicas tell each other about runs (a run's agent lives in one process).

    Guarantees:
    - `request_cancel` delivers the run id to every replica's `serve` handler that is
      running at that moment (a replica that is down misses it; the caller finds out by
      waiting for the run's `done`). `request_input` delivers an interactive run's input
      (and who sent it) the same way, to `on_input`. `serve` runs until cancelled.
    - Leases: the owner `claim`s a run when it starts, `renew`s the leases of its runs
      well within `ttl_s`, and `release`s a run when it ends. `take_orphans` returns the
      claimed runs whose lease expired (their owner is gone), each to one caller only."""

    async def request_cancel(self, run_id: str) -> None: ...

    async def request_input(self, run_id: str, agent_input: AgentInput, by: str | None) -> None: ...

    async def serve(
        self, on_cancel: Callable[[str], Awaitable[None]], on_input: InputHandler
    ) -> None: ...

    async def claim(self, run_id: str, ttl_s: float) -> None: ...

    async def renew(self, run_ids: list[str], ttl_s: float) -> None: ...

    async def release(self, run_id: str) -> None: ...

    async def take_orphans(self) -> list[str]: ...

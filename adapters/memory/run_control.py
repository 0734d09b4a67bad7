"""Run control for a single replica: every run is local, so there is no one to tell and
no owner can be lost while this process lives."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from domain.model import AgentInput
from ports.run_control import InputHandler


class LocalRunControl:
    async def request_cancel(self, run_id: str) -> None:
        return None  # every run of this gateway is in this process

    async def request_input(self, run_id: str, agent_input: AgentInput, by: str | None) -> None:
        return None  # the same: the run is here, and took it directly

    async def serve(
        self, on_cancel: Callable[[str], Awaitable[None]], on_input: InputHandler
    ) -> None:
        await asyncio.Event().wait()  # nothing ever arrives

    async def claim(self, run_id: str, ttl_s: float) -> None:
        return None

    async def renew(self, run_ids: list[str], ttl_s: float) -> None:
        return None

    async def release(self, run_id: str) -> None:
        return None

    async def take_orphans(self) -> list[str]:
        return []

"""Hand-written fakes of our ports, recording what happened."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from domain.errors import ProviderUnavailable
from domain.model import (
    AgentEvent,
    AgentRequest,
    AgentResult,
    Capabilities,
    OutputEvent,
    OutputType,
)


class FakeCodeAgent:
    """A CodeAgent whose behaviour is a script: emit these texts, then end like this.

    `hang=True` keeps it running until cancelled; `crash_after` raises after that many
    events; `unavailable` makes capabilities say so."""

    def __init__(
        self,
        texts: tuple[str, ...] = ("hello", "world"),
        exit_code: int = 0,
        hang: bool = False,
        crash_after: int | None = None,
        unavailable: str | None = None,
        stop_delay_s: float = 0.0,
        fails_to_start: str | None = None,
    ) -> None:
        self.fails_to_start = fails_to_start
        self.texts = texts
        self.exit_code = exit_code
        self.hang = hang
        self.crash_after = crash_after
        self.unavailable = unavailable
        self.stop_delay_s = stop_delay_s
        self.executed: list[AgentRequest] = []
        self.cancelled: list[str] = []
        self.stopped: dict[str, asyncio.Event] = {}

    def capabilities(self) -> Capabilities:
        if self.unavailable:
            return Capabilities(available=False, detail=self.unavailable)
        return Capabilities(available=True, detail="fake", streaming=True, cancel=True)

    async def execute(self, run_id: str, request: AgentRequest) -> AsyncGenerator[AgentEvent, None]:
        if self.unavailable or self.fails_to_start:
            raise ProviderUnavailable("fake", self.unavailable or self.fails_to_start or "")
        self.executed.append(request)
        return self._events(run_id)

    async def _events(self, run_id: str) -> AsyncGenerator[AgentEvent, None]:
        stop = self.stopped.setdefault(run_id, asyncio.Event())
        for i, text in enumerate(self.texts):
            if self.crash_after is not None and i == self.crash_after:
                raise RuntimeError("fake agent crashed")
            yield OutputEvent(OutputType.TEXT, text)
        if self.hang:
            await stop.wait()
            yield AgentResult(exit_code=0, result="interrupted")
            return
        yield AgentResult(
            exit_code=self.exit_code,
            result="".join(self.texts),
            input_tokens=3,
            output_tokens=len(self.texts),
        )

    async def cancel(self, run_id: str) -> None:
        self.cancelled.append(run_id)
        await asyncio.sleep(self.stop_delay_s)
        self.stopped.setdefault(run_id, asyncio.Event()).set()

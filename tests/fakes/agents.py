"""Hand-written fakes of our ports, recording what happened."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping

from domain.errors import AgentStartFailed, InputNotAccepted
from domain.model import (
    AgentEvent,
    AgentInput,
    AgentRequest,
    AgentResult,
    Capabilities,
    Outcome,
    OutputEvent,
    OutputType,
)
from ports.clock import Clock


class FakeCodeAgent:
    """A CodeAgent whose behaviour is a script: emit these texts, then end like this.

    `hang=True` keeps it running until stopped; `crash_after` raises after that many
    events; `unavailable` makes capabilities say so; `stop_delay_s` is how long a stop takes
    (on `clock`, if given); `start_gate`, if given, holds every start until it is set.
    `started` records every request, `stops` every run id stopped."""

    def __init__(
        self,
        texts: tuple[str, ...] = ("hello", "world"),
        exit_code: int = 0,
        hang: bool = False,
        crash_after: int | None = None,
        unavailable: str | None = None,
        stop_delay_s: float = 0.0,
        fails_to_start: str | None = None,
        clock: Clock | None = None,
        start_gate: asyncio.Event | None = None,
    ) -> None:
        self.fails_to_start = fails_to_start
        self.start_gate = start_gate
        self.texts = texts
        self.exit_code = exit_code
        self.hang = hang
        self.crash_after = crash_after
        self.unavailable = unavailable
        self.stop_delay_s = stop_delay_s
        self.clock = clock
        self.started: list[AgentRequest] = []
        self.stops: list[str] = []
        self.runs: dict[str, FakeAgentRun] = {}

    def capabilities(self) -> Capabilities:
        if self.unavailable:
            return Capabilities(available=False, detail=self.unavailable)
        return Capabilities(available=True, detail="fake", streaming=True, cancel=True)

    async def start(
        self, run_id: str, request: AgentRequest, secret_env: Mapping[str, str] | None = None
    ) -> FakeAgentRun:
        if self.unavailable or self.fails_to_start:
            raise AgentStartFailed(self.unavailable or self.fails_to_start or "")
        if self.start_gate is not None:
            await self.start_gate.wait()
        self.started.append(request)
        run = self.runs[run_id] = FakeAgentRun(self, run_id)
        return run


class FakeAgentRun:
    """The AgentRun of a FakeCodeAgent; `stopped` is set once a stop has completed."""

    def __init__(self, agent: FakeCodeAgent, run_id: str) -> None:
        self._agent = agent
        self._run_id = run_id
        self.stopped = asyncio.Event()

    async def events(self) -> AsyncGenerator[AgentEvent, None]:
        agent = self._agent
        for i, text in enumerate(agent.texts):
            if agent.crash_after is not None and i == agent.crash_after:
                raise RuntimeError("fake agent crashed")
            yield OutputEvent(OutputType.TEXT, text)
        if agent.hang:
            await self.stopped.wait()
            yield AgentResult(Outcome(exit_code=0, result="interrupted"))
            return
        outcome = Outcome(
            exit_code=agent.exit_code,
            result="".join(agent.texts),
            input_tokens=3,
            output_tokens=len(agent.texts),
        )
        yield AgentResult(outcome)

    async def send(self, agent_input: AgentInput) -> None:
        raise InputNotAccepted("the fake agent takes no input")

    async def stop(self) -> None:
        self._agent.stops.append(self._run_id)
        if self._agent.clock is not None:
            await self._agent.clock.sleep(self._agent.stop_delay_s)
        else:
            await asyncio.sleep(self._agent.stop_delay_s)
        self.stopped.set()

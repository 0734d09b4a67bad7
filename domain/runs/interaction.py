"""Interactive runs: the agent's requests wait for an answer over the API, the user sends
follow-ups, interrupts and closes. This module keeps what an interactive run waits for
(on its record and stream) and makes sure nothing waits forever: a request unanswered for
`input_timeout_s` is denied, a run idle for `idle_timeout_s` is closed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from domain.errors import InputNotAccepted
from domain.model import (
    AgentEvent,
    AgentInput,
    Close,
    InputAnswer,
    InputRequestEvent,
    InputResolvedEvent,
    OutputEvent,
    OutputType,
    Run,
    RunStatus,
    StatusEvent,
    UserMessage,
)
from domain.runs.active import ActiveRun
from domain.runs.lifecycle import publish
from domain.stats import GatewayStats
from domain.webhooks import WebhookTarget
from ports.clock import Clock
from ports.event_hub import EventHub
from ports.run_store import RunStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InteractionLimits:
    idle_timeout_s: float = 600.0  # no turn running and nothing asked: the run is closed
    input_timeout_s: float = 3600.0  # a request nobody answers is denied


def no_such_request(request_id: str) -> InputNotAccepted:
    return InputNotAccepted(f"no pending request {request_id!r} (unknown or resolved)")


class RunInteraction:
    """All methods run on one event loop, beside the run's drive task."""

    def __init__(
        self,
        hub: EventHub,
        store: RunStore,
        stats: GatewayStats,
        clock: Clock,
        limits: InteractionLimits,
        notify: Callable[[Run, str, tuple[WebhookTarget, ...]], None],
    ) -> None:
        self._hub = hub
        self._store = store
        self._stats = stats
        self._clock = clock
        self._limits = limits
        self._notify = notify  # webhooks of run.input_requested

    async def observe(self, active: ActiveRun, event: AgentEvent) -> None:
        """Called by the drive task for each event, after it was published."""
        if isinstance(event, InputRequestEvent):
            active.pending[event.request_id] = event
            active.timers[event.request_id] = asyncio.create_task(self._expire(active, event))
            await self._record(active)
            self._notify(active.run, "run.input_requested", active.request.webhooks)
        elif isinstance(event, InputResolvedEvent):  # the agent withdrew it
            self._forget(active, event.request_id)
            await self._record(active)
        elif isinstance(event, OutputEvent) and event.type is OutputType.TURN_END:
            await self._record(active, turns=active.run.turns + 1)
            self._watch_idle(active)

    async def send(self, active: ActiveRun, agent_input: AgentInput, by: str | None) -> None:
        """Hands the input to the agent; InputNotAccepted (409) if it takes no such input
        now (an unknown or answered request, a run that is not interactive)."""
        if isinstance(agent_input, InputAnswer):
            if agent_input.request_id not in active.pending:
                raise no_such_request(agent_input.request_id)
            await active.execution.send(agent_input)
            decision = "allow" if agent_input.allow else "deny"
            if agent_input.allow and agent_input.answers:
                decision = "answered"
            await self._resolve(active, agent_input.request_id, decision, by)
            return
        await active.execution.send(agent_input)
        if isinstance(agent_input, UserMessage):
            active.turns_asked += 1
            self._cancel(active.timers.pop("idle", None))

    async def _resolve(
        self, active: ActiveRun, request_id: str, decision: str, by: str | None
    ) -> None:
        self._forget(active, request_id)
        if active.ending:  # the run ended meanwhile: its stream and record are final
            return
        resolved = InputResolvedEvent(request_id, decision, by)
        await publish(self._hub, self._stats, active.run.stream_id, resolved)
        await self._record(active)

    async def _expire(self, active: ActiveRun, request: InputRequestEvent) -> None:
        await self._clock.sleep(self._limits.input_timeout_s)
        active.timers.pop(request.request_id, None)  # this task is ending: nothing to cancel
        if request.request_id not in active.pending:
            return
        message = f"no answer within input_timeout_s ({self._limits.input_timeout_s:g} s)"
        log.info("request %s timed out: denied", request.request_id)
        try:
            await active.execution.send(InputAnswer(request.request_id, False, message))
            await self._resolve(active, request.request_id, "timed_out", None)
        except Exception:
            log.exception("run %s: cannot deny a timed-out request", active.run.run_id)

    def _watch_idle(self, active: ActiveRun) -> None:
        self._cancel(active.timers.pop("idle", None))
        if not active.pending and not active.turn_running:
            active.timers["idle"] = asyncio.create_task(self._close_when_idle(active))

    async def _close_when_idle(self, active: ActiveRun) -> None:
        await self._clock.sleep(self._limits.idle_timeout_s)
        active.timers.pop("idle", None)
        if active.turn_running or active.pending:
            return
        log.info("idle for %g s: closing the run", self._limits.idle_timeout_s)
        try:
            await active.execution.send(Close())
        except Exception:
            log.exception("run %s: cannot close an idle run", active.run.run_id)

    def _forget(self, active: ActiveRun, request_id: str) -> None:
        active.pending.pop(request_id, None)
        self._cancel(active.timers.pop(request_id, None))

    async def _record(self, active: ActiveRun, turns: int | None = None) -> None:
        """The record and the stream show what the run waits for (and its turns)."""
        if active.ending:
            return
        status = RunStatus.WAITING_INPUT if active.pending else RunStatus.RUNNING
        changed = status is not active.run.status
        active.run = replace(
            active.run,
            status=status,
            pending_inputs=tuple(active.pending.values()),
            turns=active.run.turns if turns is None else turns,
        )
        await self._store.save(active.run)
        if changed:
            await publish(self._hub, self._stats, active.run.stream_id, StatusEvent(status))

    @staticmethod
    def _cancel(task: asyncio.Task[None] | None) -> None:
        if task is not None and task is not asyncio.current_task():
            task.cancel()

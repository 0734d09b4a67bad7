"""A run's life: start its agent (through a fallback chain), drive its events onto the
stream, and end it with exactly one `done` and its final record, also when the agent
crashes, times out, is cancelled, or the gateway is stopping."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from domain.credentials import NO_CREDENTIALS, Credentials, RunCredentials
from domain.errors import AgentStartFailed, InvalidRequest, ProviderUnavailable, ShuttingDown
from domain.logcontext import bind_run
from domain.model import (
    AgentEvent,
    AgentRequest,
    AgentResult,
    DoneEvent,
    ErrorEvent,
    Outcome,
    OutputEvent,
    OutputType,
    Run,
    RunStatus,
    StatusEvent,
    StreamEvent,
)
from domain.redaction import EventRedaction, Redactor, ValuesInUse
from domain.registry import ProviderRegistry
from domain.runs.active import ActiveRun, ActiveRuns, StopReason
from domain.runs.outcome import final_record, final_status
from domain.runs.stopping import RunStopper
from domain.stats import GatewayStats
from domain.webhooks import WebhookTarget
from domain.woodpecker import PipelineTrigger, WoodpeckerTarget
from ports.clock import Clock
from ports.code_agent import AgentRun
from ports.event_hub import EventHub
from ports.run_control import RunControl
from ports.run_store import RunStore

log = logging.getLogger(__name__)
PIPELINE_TIMEOUT_S = 15.0  # a CI server that hangs delays `done` no longer
# Tells a run's webhooks of one of its events (never waits).
Notify = Callable[[Run, str, tuple[WebhookTarget, ...]], None]


async def publish(hub: EventHub, stats: GatewayStats, stream_id: str, event: StreamEvent) -> None:
    await hub.publish(stream_id, event)
    stats.events_published += 1


async def record_end(
    store: RunStore, hub: EventHub, stats: GatewayStats, final: Run, done: DoneEvent
) -> None:
    """The record first: whoever sees `done` (on any replica) then reads the final one."""
    await store.save(final)
    await publish(hub, stats, final.stream_id, done)
    await hub.close(final.stream_id)


def gateway_only(request: AgentRequest) -> set[str]:
    """Credentials the gateway signs or calls with (webhook secrets, the CI token): the
    agent must not get them, or it could forge a `run.finished` or drive the CI itself.
    They are still redacted."""
    names = {target.secret for target in request.webhooks}
    if request.woodpecker is not None:
        names.add(request.woodpecker.token)
    return names


@dataclass(frozen=True, slots=True)
class StartedAgent:
    """An agent of the chain that started, what was skipped before it, and the project's
    credentials its process was given."""

    provider: str
    execution: AgentRun
    skipped: tuple[str, ...]
    credentials: RunCredentials
    redactor: Redactor  # of those credentials' values


@dataclass(frozen=True, slots=True)
class RunLimits:
    """Concurrent runs and open event streams on one replica, and runs waiting in the
    queue of the deployment; None = no limit."""

    max_runs: int | None = None
    max_runs_per_project: int | None = None
    max_queued: int = 10_000
    max_subscribers: int | None = None
    max_subscribers_per_stream: int | None = None


class RunLifecycle:
    """Starts runs and drives each to its end. All methods run on one event loop."""

    def __init__(
        self,
        registry: ProviderRegistry,
        hub: EventHub,
        store: RunStore,
        control: RunControl,
        active: ActiveRuns,
        stopper: RunStopper,
        stats: GatewayStats,
        clock: Clock,
        new_id: Callable[[], str],
        limits: RunLimits,
        lease_ttl_s: float,
        observe: Callable[[ActiveRun, AgentEvent], Awaitable[None]],
        credentials: Credentials | None,
        values_in_use: ValuesInUse,
        notify: Notify,
        pipelines: PipelineTrigger | None,
    ) -> None:
        self._registry = registry
        self._hub = hub
        self._store = store
        self._control = control
        self._active = active
        self._stopper = stopper
        self._stats = stats
        self._clock = clock
        self._new_id = new_id
        self._limits = limits
        self._lease_ttl_s = lease_ttl_s
        self._observe = observe  # what an interactive run's events change (its record)
        self._credentials = credentials
        self._values_in_use = values_in_use
        self._notify = notify  # webhooks of run.started and run.finished
        self._pipelines = pipelines  # CI started by a succeeded run
        self.accepting = True

    async def admit(self, request: AgentRequest) -> None:
        """Refuses a run this replica cannot take at all: the gateway is stopping, the
        chain names an unknown provider, or a credential it requires is missing (checked
        before the run waits in the queue)."""
        if not self.accepting:
            raise ShuttingDown()
        for name in request.providers:
            self._registry.get(name)
        if request.credentials:
            if self._credentials is None:
                raise InvalidRequest("credentials", "this gateway keeps no credentials")
            await self._credentials.require(request.project_id, request.credentials)

    def notify(self, run: Run, event_type: str, targets: tuple[WebhookTarget, ...]) -> None:
        """Tells a run's webhooks (for runs that end in the queue, which never launch)."""
        self._notify(run, event_type, targets)

    def has_room(self, project_id: str | None = None) -> bool:
        """Whether the limits let one more run (of this project) start on this replica."""
        limits = self._limits
        if limits.max_runs is not None and self._active.occupied() >= limits.max_runs:
            return False
        per_project = limits.max_runs_per_project
        if project_id is None or per_project is None:
            return True
        return self._active.occupied(project_id) < per_project

    def full_projects(self) -> set[str]:
        """The projects whose per-project limit is reached on this replica."""
        per_project = self._limits.max_runs_per_project
        return set() if per_project is None else self._active.projects_at(per_project)

    async def start(self, request: AgentRequest) -> Run:
        """Starts the agent at once (the caller checked `has_room`) and answers with the
        running record; ProviderUnavailable (503) if no provider of the chain starts."""
        run_id = self._new_id()
        bind_run(run_id, request.project_id)
        with self._active.reserved(run_id, request.project_id):
            started = await self.start_agent(run_id, request)
            now = self._clock.now()
            run = Run(
                run_id=run_id,
                project_id=request.project_id,
                stream_id=self._new_id(),
                provider=started.provider,
                status=RunStatus.RUNNING,
                created_at=now,
                started_at=now,
                providers_skipped=started.skipped,
                outcome=Outcome(session_id=request.session_id),
                metadata=request.metadata,
                credentials=started.credentials.names,
                template=request.template,
                settings=request.settings,
            )
            return await self.launch(run, started, request)

    async def start_agent(self, run_id: str, request: AgentRequest) -> StartedAgent:
        """A provider of the chain that is unavailable or fails to start is skipped (the
        reason is kept); if none starts, the last failure is raised (ProviderUnavailable).
        The project's credentials are opened first (CredentialUnreadable, 503, if one does
        not open; InvalidRequest, 422, if one the run requires is missing); what was
        skipped is redacted, as a failure may quote the environment."""
        credentials = NO_CREDENTIALS
        if self._credentials is not None:
            credentials = await self._credentials.for_run(request.project_id, request.credentials)
            credentials = credentials.without(gateway_only(request))
        redactor = Redactor(credentials.values)
        chain = request.providers or (self._registry.default_name(),)
        agents = [(name, self._registry.get(name)) for name in chain]
        skipped: list[str] = []
        detail = ""
        for name, agent in agents:
            capabilities = agent.capabilities()
            if not capabilities.available:
                detail = capabilities.detail
                skipped.append(f"{name}: {detail}")
                continue
            try:
                execution = await agent.start(run_id, request, credentials.env)
            except AgentStartFailed as exc:
                self._stats.upstream_errors[name] += 1
                detail = redactor.text(exc.detail)
                skipped.append(f"{name}: {detail}")
                continue
            return StartedAgent(name, execution, tuple(skipped), credentials, redactor)
        raise ProviderUnavailable(
            ",".join(chain), "; ".join(skipped) if len(agents) > 1 else detail
        )

    async def launch(
        self, run: Run, started: StartedAgent, request: AgentRequest, from_queue: bool = False
    ) -> Run:
        """Records the running run and drives its agent. A run from the queue already has
        its stream, and its `status running` event comes first."""
        run_id, provider, execution = run.run_id, started.provider, started.execution
        # Active before it is recorded: a cancel that finds the record finds the run.
        active = ActiveRun(run, provider, execution, request, EventRedaction(started.redactor))
        self._active.add(active)
        self._values_in_use.add(started.redactor)
        try:
            await self._hub.create(run.stream_id)
            await self._store.save(run)
            await self._control.claim(run.run_id, self._lease_ttl_s)
            if from_queue:
                await publish(self._hub, self._stats, run.stream_id, StatusEvent(run.status))
        except BaseException:
            self._active.remove(run_id)
            self._values_in_use.remove(started.redactor)
            await self._abandon(run_id, execution)
            raise
        active.driver = asyncio.create_task(self._drive(active), name=f"run-{run_id}")
        self._notify(run, "run.started", request.webhooks)
        self._stats.runs_started[provider] += 1
        log.info("run started: provider %s", provider)
        if self._active.cancel_asked(run_id):  # cancelled while its agent was starting
            self._stopper.request(active, StopReason.CANCELLED)
        return run

    @staticmethod
    async def _abandon(run_id: str, execution: AgentRun) -> None:
        """Stops an agent that started but whose run could not be recorded (the hub or the
        store failed): nothing may run that no record or stream knows of."""
        try:
            await asyncio.wait_for(execution.stop(), 30)
        except Exception:
            log.exception("run %s: cannot stop the agent of a run that failed to start", run_id)

    async def _drive(self, active: ActiveRun) -> None:
        run = active.run
        started = self._clock.monotonic()
        result: AgentResult | None = None
        failure: str | None = None
        timer = None
        if active.request.timeout_s is not None:
            timer = asyncio.create_task(self._time_out(active, active.request.timeout_s))
        try:
            async with contextlib.aclosing(active.execution.events()) as events:
                async for agent_event in events:
                    for event in active.redaction.event(agent_event):
                        if isinstance(event, AgentResult):
                            result = event
                            continue
                        if isinstance(event, ErrorEvent):
                            self._stats.upstream_errors[active.provider] += 1
                        await publish(self._hub, self._stats, run.stream_id, event)
                        if active.request.interactive:
                            await self._observe(active, event)
                for event in active.redaction.flush():  # an agent that ended mid-value
                    await publish(self._hub, self._stats, run.stream_id, event)
        except asyncio.CancelledError:
            failure = "run aborted: the gateway stopped before the agent finished"
            raise
        except Exception as exc:  # the agent crashed: report it on the stream, never lose done
            log.exception("run %s: agent %s failed", run.run_id, active.provider)
            self._stats.upstream_errors[active.provider] += 1
            failure = active.redaction.redactor.text(f"agent error: {exc}")
            try:
                for event in active.redaction.flush():  # what was held back still goes out
                    await publish(self._hub, self._stats, run.stream_id, event)
                await publish(self._hub, self._stats, run.stream_id, ErrorEvent(failure))
            except Exception:  # the hub itself may be what failed
                log.exception("run %s: cannot publish the error", run.run_id)
        finally:
            if timer is not None:
                timer.cancel()
            await self._finish(active, result, failure, self._clock.monotonic() - started)

    async def _time_out(self, active: ActiveRun, timeout_s: float) -> None:
        await self._clock.sleep(timeout_s)
        self._stopper.request(active, StopReason.TIMED_OUT)

    async def _finish(
        self,
        active: ActiveRun,
        reported: AgentResult | None,
        failure: str | None,
        elapsed_s: float,
    ) -> None:
        active.ending = True
        for timer in active.timers.values():  # an interactive run's input and idle timeouts
            timer.cancel()
        status, error = final_status(active.stop_reason, reported, failure)
        outcome = reported.outcome if reported is not None else Outcome()
        self._stats.redactions += active.redaction.redactor.count
        target = active.request.woodpecker
        cancelled = False
        if status is RunStatus.SUCCEEDED and target is not None and self._pipelines is not None:
            try:
                await self._start_pipeline(active, target)
            except asyncio.CancelledError:  # the run is still recorded; then the cancel goes on
                cancelled = True
        run, done = final_record(
            active.run, status, outcome, error, self._clock.now(), round(elapsed_s * 1000)
        )
        try:
            await record_end(self._store, self._hub, self._stats, run, done)
        except Exception:  # the store or hub is down: the agent has stopped all the same
            log.exception("run %s: cannot record its end (%s)", run.run_id, status)
        finally:
            self._active.remove(run.run_id)
            self._values_in_use.remove(active.redaction.redactor)
            self._count_finished(active, status, elapsed_s)
            active.finished.set()
        self._notify(run, "run.finished", active.request.webhooks)
        try:
            await self._control.release(run.run_id)
        except Exception:
            log.exception("run %s: cannot release its lease", run.run_id)
        if cancelled:
            raise asyncio.CancelledError

    async def _start_pipeline(self, active: ActiveRun, target: WoodpeckerTarget) -> None:
        """Before `done`: the stream and the final record say which pipeline (or why none)."""
        assert self._pipelines is not None
        try:
            async with asyncio.timeout(PIPELINE_TIMEOUT_S):
                pipeline = await self._pipelines.after_success(active.run, target)
        except TimeoutError:
            pipeline = {"error": f"Woodpecker did not answer within {PIPELINE_TIMEOUT_S:g} s"}
        except Exception as exc:  # the credential store failed: the run succeeded all the same
            log.exception("run %s: cannot start its pipeline", active.run.run_id)
            pipeline = {"error": f"cannot start the pipeline: {exc}"}
        active.run = replace(active.run, pipeline=pipeline)
        text = (
            f"woodpecker pipeline {pipeline['number']} started: {pipeline['link']}"
            if "number" in pipeline
            else f"no woodpecker pipeline: {pipeline['error']}"
        )
        event = OutputEvent(OutputType.SYSTEM, text, {"subtype": "woodpecker", **pipeline})
        try:
            await publish(self._hub, self._stats, active.run.stream_id, event)
        except Exception:
            log.exception("run %s: cannot publish its pipeline", active.run.run_id)

    def _count_finished(self, active: ActiveRun, status: RunStatus, elapsed_s: float) -> None:
        self._stats.run_finished(active.provider, status, elapsed_s)
        if status is RunStatus.CANCELLED and active.stop_requested_at is not None:
            self._stats.cancels += 1
            self._stats.stop_seconds.observe(self._clock.monotonic() - active.stop_requested_at)
        log.info("run finished: %s", status)

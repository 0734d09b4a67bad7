"""Use cases: start a run, follow its stream, cancel it, read run records, shut down.

Every run is driven by one task that owns the agent: it publishes each event the agent
yields, always ends the stream with exactly one `done`, and saves the final record, also when
the agent crashes, times out, is cancelled, or the gateway is stopping."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import secrets
import time
import weakref
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from domain.errors import (
    LimitExceeded,
    OwnerUnreachable,
    ProviderUnavailable,
    RunNotFound,
    ShuttingDown,
    StreamNotFound,
    SubscriberTooSlow,
)
from domain.logcontext import bind_run, working_for
from domain.model import (
    AgentEvent,
    AgentRequest,
    AgentResult,
    DoneEvent,
    ErrorEvent,
    Run,
    RunStatus,
    SequencedEvent,
    StreamEvent,
    validate_project_id,
)
from domain.registry import ProviderRegistry
from domain.stats import GatewayStats
from ports.code_agent import CodeAgent
from ports.event_hub import EventHub
from ports.run_control import RunControl
from ports.run_store import RunStore

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_secret_id() -> str:
    """128 random bits, URL-safe: run and stream ids must be unguessable."""
    return secrets.token_urlsafe(16)


class StopReason(enum.Enum):
    CANCELLED = "cancelled by request"
    TIMED_OUT = "run timed out"
    SHUTDOWN = "gateway shutting down"


@dataclass(slots=True)
class _ActiveRun:
    run: Run
    agent: CodeAgent
    request: AgentRequest
    stop_reason: StopReason | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    stop_task: asyncio.Task[None] | None = None
    stop_requested_at: float | None = None  # monotonic


class RunService:
    """The gateway's use cases. All methods run on one event loop."""

    def __init__(
        self,
        registry: ProviderRegistry,
        hub: EventHub,
        store: RunStore,
        control: RunControl | None = None,
        *,
        lease_ttl_s: float = 15.0,
        max_runs: int | None = None,
        max_runs_per_project: int | None = None,
        max_subscribers: int | None = None,
        max_subscribers_per_stream: int | None = None,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        new_id: Callable[[], str] = new_secret_id,
    ) -> None:
        self._registry = registry
        self._hub = hub
        self._store = store
        self._control = control
        self._lease_ttl_s = lease_ttl_s
        self._max_runs = max_runs
        self._max_runs_per_project = max_runs_per_project
        self._max_subscribers = max_subscribers
        self._max_subscribers_per_stream = max_subscribers_per_stream
        self._subscribers_by_stream: dict[str, int] = {}
        self._clock = clock
        self._monotonic = monotonic
        self._new_id = new_id
        self._active: dict[str, _ActiveRun] = {}
        self._accepting = True
        self.stats = GatewayStats()

    @property
    def active_count(self) -> int:
        return len(self._active)

    # --- start -----------------------------------------------------------------------------

    async def start(self, request: AgentRequest) -> Run:
        """Starts the agent, then answers. A provider of the chain that is unavailable or
        fails to start is skipped (the reason is recorded); if none starts, the last
        failure is raised (ProviderUnavailable: 503)."""
        if not self._accepting:
            raise ShuttingDown()
        self._check_limits(request.project_id)
        run_id = self._new_id()
        bind_run(run_id, request.project_id)
        chain = request.providers or (self._registry.default_name(),)
        agents = [(name, self._registry.get(name)) for name in chain]  # unknown names fail first
        skipped: list[str] = []
        detail = ""
        for name, agent in agents:
            capabilities = agent.capabilities()
            if not capabilities.available:
                detail = capabilities.detail
                skipped.append(f"{name}: {detail}")
                continue
            try:
                events = await agent.execute(run_id, request)
            except ProviderUnavailable as exc:
                self.stats.upstream_errors[name] += 1
                detail = exc.detail
                skipped.append(f"{name}: {detail}")
                continue
            try:
                return await self._launch(run_id, name, agent, events, request, tuple(skipped))
            except BaseException:
                await self._abandon(run_id, agent, events)
                raise
        raise ProviderUnavailable(
            ",".join(chain), "; ".join(skipped) if len(agents) > 1 else detail
        )

    async def _abandon(
        self, run_id: str, agent: CodeAgent, events: AsyncGenerator[AgentEvent, None]
    ) -> None:
        """Stops an agent that started but whose run could not be recorded (the hub or the
        store failed): nothing may run that no record or stream knows of."""
        try:
            await asyncio.wait_for(agent.cancel(run_id), 30)
        except Exception:
            log.exception("run %s: cannot stop the agent of a run that failed to start", run_id)
        finally:
            await events.aclose()

    def _check_limits(self, project_id: str) -> None:
        """Concurrent runs on this replica, in total and per project."""
        if self._max_runs is not None and len(self._active) >= self._max_runs:
            raise LimitExceeded(
                "max_runs", f"{self._max_runs} runs are running; try again later", 5
            )
        per_project = self._max_runs_per_project
        if per_project is not None:
            running = sum(1 for a in self._active.values() if a.run.project_id == project_id)
            if running >= per_project:
                raise LimitExceeded(
                    "max_runs_per_project",
                    f"project {project_id!r} has {running} runs running (at most {per_project})",
                    5,
                )

    async def _launch(
        self,
        run_id: str,
        provider: str,
        agent: CodeAgent,
        events: AsyncGenerator[AgentEvent, None],
        request: AgentRequest,
        skipped: tuple[str, ...],
    ) -> Run:
        now = self._clock()
        run = Run(
            run_id=run_id,
            project_id=request.project_id,
            stream_id=self._new_id(),
            provider=provider,
            status=RunStatus.RUNNING,
            created_at=now,
            started_at=now,
            providers_skipped=skipped,
            session_id=request.session_id,
            metadata=request.metadata,
        )
        await self._hub.create(run.stream_id)
        await self._store.save(run)
        if self._control is not None:
            await self._control.claim(run.run_id, self._lease_ttl_s)
        active = _ActiveRun(run, agent, request)
        self._active[run.run_id] = active
        active.task = asyncio.create_task(self._drive(active, events), name=f"run-{run_id}")
        self.stats.runs_started[provider] += 1
        log.info("run started: provider %s", provider)
        return run

    async def _drive(
        self, active: _ActiveRun, agent_events: AsyncGenerator[AgentEvent, None]
    ) -> None:
        run = active.run
        request = active.request
        started = self._monotonic()
        result: AgentResult | None = None
        failure: str | None = None
        timer = None
        if request.timeout_s is not None:
            timer = asyncio.get_running_loop().call_later(
                request.timeout_s, self._request_stop, active, StopReason.TIMED_OUT
            )
        try:
            async with contextlib.aclosing(agent_events) as events:
                async for event in events:
                    if isinstance(event, AgentResult):
                        result = event
                        continue
                    if isinstance(event, ErrorEvent):
                        self.stats.upstream_errors[run.provider] += 1
                    await self._publish(run.stream_id, event)
        except asyncio.CancelledError:
            failure = "run aborted: the gateway stopped before the agent finished"
            raise
        except Exception as exc:  # the agent crashed: report it on the stream, never lose done
            log.exception("run %s: agent %s failed", run.run_id, run.provider)
            self.stats.upstream_errors[run.provider] += 1
            failure = f"agent error: {exc}"
            try:
                await self._publish(run.stream_id, ErrorEvent(failure))
            except Exception:  # the hub itself may be what failed
                log.exception("run %s: cannot publish the error", run.run_id)
        finally:
            if timer is not None:
                timer.cancel()
            await self._finish(active, result, failure, self._monotonic() - started)

    async def _publish(self, stream_id: str, event: StreamEvent) -> None:
        await self._hub.publish(stream_id, event)
        self.stats.events_published += 1

    async def _finish(
        self,
        active: _ActiveRun,
        reported: AgentResult | None,
        failure: str | None,
        elapsed_s: float,
    ) -> None:
        status, error = _final_status(active.stop_reason, reported, failure)
        result = reported or AgentResult()
        run = replace(
            active.run,
            status=status,
            finished_at=self._clock(),
            exit_code=result.exit_code,
            session_id=result.session_id or active.run.session_id,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            cost_usd=result.cost_usd,
            error=error,
        )
        done = DoneEvent(
            status=status,
            exit_code=result.exit_code,
            duration_ms=round(elapsed_s * 1000),
            result=result.result,
            session_id=run.session_id,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            cost_usd=result.cost_usd,
            provider=run.provider,
            error=error,
            model=result.model,
        )
        try:
            # The record first: whoever sees `done` (on any replica) then reads the final one.
            await self._store.save(run)
            await self._publish(run.stream_id, done)
            await self._hub.close(run.stream_id)
        except Exception:  # the store or hub is down: the agent has stopped all the same
            log.exception("run %s: cannot record its end (%s)", run.run_id, status)
        finally:
            self._active.pop(run.run_id, None)
            self._count_finished(active, status, elapsed_s)
            active.finished.set()
        if self._control is not None:
            try:
                await self._control.release(run.run_id)
            except Exception:
                log.exception("run %s: cannot release its lease", run.run_id)

    def _count_finished(self, active: _ActiveRun, status: RunStatus, elapsed_s: float) -> None:
        self.stats.run_finished(active.run.provider, status, elapsed_s)
        if status is RunStatus.CANCELLED and active.stop_requested_at is not None:
            self.stats.cancels += 1
            self.stats.stop_seconds.observe(self._monotonic() - active.stop_requested_at)
        log.info("run finished: %s", status)

    # --- stop ------------------------------------------------------------------------------

    def _request_stop(self, active: _ActiveRun, reason: StopReason) -> None:
        """Asks the agent to stop; the first reason wins. The drive task publishes `done`."""
        if active.stop_reason is not None or active.finished.is_set():
            return
        active.stop_reason = reason
        active.stop_requested_at = self._monotonic()
        log.info("stopping the agent: %s", reason.value)
        active.stop_task = asyncio.create_task(active.agent.cancel(active.run.run_id))

    async def cancel(self, project_id: str, run_id: str, remote_wait_s: float = 60.0) -> Run:
        """Stops the run and returns its final record once the agent has stopped. A run
        owned by another replica is asked to stop through the run control; its `done` on
        the shared stream confirms it."""
        run = await self.get(project_id, run_id)
        bind_run(run_id, project_id)
        active = self._active.get(run_id)
        if active is not None:
            self._request_stop(active, StopReason.CANCELLED)
            # The stop goes on even if the caller goes away: a cancel is never half done.
            await asyncio.shield(active.finished.wait())
        elif not run.status.finished and self._control is not None:
            await self._control.request_cancel(run_id)
            try:
                async with asyncio.timeout(remote_wait_s):
                    async for _ in self._hub.subscribe(run.stream_id):
                        pass  # the stream ends after `done`
            except TimeoutError:
                raise OwnerUnreachable(run_id) from None
        return await self.get(project_id, run_id)

    async def serve_control(self) -> None:
        """Acts on cancel requests from other replicas for the runs this one owns, keeps
        the leases of its runs, and finishes the runs of replicas that died."""
        if self._control is None:
            return
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._control.serve(self._cancel_if_owned))
            tasks.create_task(self._keep_leases(self._control))

    async def _keep_leases(self, control: RunControl) -> None:
        while True:
            await asyncio.sleep(self._lease_ttl_s / 3)
            try:
                await control.renew(list(self._active), self._lease_ttl_s)
                for run_id in await control.take_orphans():
                    await self._finish_orphan(run_id)
            except Exception:  # the store is unreachable: try again next round
                log.exception("cannot keep run leases")

    async def _finish_orphan(self, run_id: str) -> None:
        """A run whose owner replica died: failed, with `done`, so no client waits forever."""
        run = await self._store.get(run_id)
        if run is None or run.status.finished:
            return
        with working_for(run_id, run.project_id):
            error = "owner lost: the replica running this run stopped without finishing it"
            log.warning("run %s: %s", run_id, error)
            final = replace(run, status=RunStatus.FAILED, finished_at=self._clock(), error=error)
            await self._store.save(final)
            done = DoneEvent(
                RunStatus.FAILED,
                None,
                None,
                None,
                run.session_id,
                None,
                None,
                None,
                provider=run.provider,
                error=error,
            )
            await self._publish(run.stream_id, done)
            await self._hub.close(run.stream_id)

    async def _cancel_if_owned(self, run_id: str) -> None:
        active = self._active.get(run_id)
        if active is not None:
            with working_for(run_id, active.run.project_id):
                self._request_stop(active, StopReason.CANCELLED)

    async def shutdown(self, grace_s: float) -> None:
        """Refuses new runs, stops every running agent, and returns once all have published
        `done`. Agents still running after `grace_s` are killed by cancelling their task."""
        self._accepting = False
        actives = list(self._active.values())
        for active in actives:
            with working_for(active.run.run_id, active.run.project_id):
                self._request_stop(active, StopReason.SHUTDOWN)
        waits = [asyncio.create_task(a.finished.wait()) for a in actives]
        if not waits:
            return
        _, pending = await asyncio.wait(waits, timeout=grace_s)
        if pending:
            log.warning("%d runs still running after %.1fs; killing them", len(pending), grace_s)
            for active in actives:
                if active.task is not None and not active.finished.is_set():
                    active.task.cancel()
            await asyncio.wait(pending)

    async def unreachable_backends(self) -> list[str]:
        """What this replica cannot reach among its event hub and run store (for /readyz)."""
        probe = "readiness-probe"  # no run or stream has this id: a cheap read of nothing
        problems = []
        for name, check in (("event hub", self._hub.exists), ("run store", self._store.get)):
            try:
                await asyncio.wait_for(check(probe), 5)
            except Exception as exc:
                problems.append(f"{name}: {exc or type(exc).__name__}")
        return problems

    # --- read ------------------------------------------------------------------------------

    async def get(self, project_id: str, run_id: str) -> Run:
        validate_project_id(project_id)
        run = await self._store.get(run_id)
        if run is None or run.project_id != project_id:
            raise RunNotFound(project_id, run_id)
        return run

    async def list_runs(self, project_id: str, limit: int = 100) -> list[Run]:
        validate_project_id(project_id)
        return await self._store.list_for_project(project_id, limit)

    async def open_stream(
        self, project_id: str, stream_id: str, after_seq: int = 0
    ) -> AsyncGenerator[list[SequencedEvent], None]:
        """The run's events after `after_seq` in batches: retained ones, then live ones.
        Checks everything before returning, so an HTTP response can still choose its status."""
        validate_project_id(project_id)
        run = await self._store.find_by_stream(stream_id)
        if run is None or run.project_id != project_id or not await self._hub.exists(stream_id):
            raise StreamNotFound(project_id, stream_id)
        self._admit_subscriber(stream_id)
        try:
            batches = self._hub.subscribe(stream_id, max(after_seq, 0))
        except BaseException:
            self._release_subscriber(stream_id)
            raise
        return self._counted(stream_id, batches)

    def _admit_subscriber(self, stream_id: str) -> None:
        """Open event streams on this replica, in total and per stream."""
        if self._max_subscribers is not None and self.stats.subscribers >= self._max_subscribers:
            raise LimitExceeded(
                "max_subscribers", f"{self._max_subscribers} event streams are open", 5
            )
        count = self._subscribers_by_stream.get(stream_id, 0)
        if (
            self._max_subscribers_per_stream is not None
            and count >= self._max_subscribers_per_stream
        ):
            raise LimitExceeded(
                "max_subscribers_per_stream",
                f"this stream has {count} subscribers (at most {self._max_subscribers_per_stream})",
                5,
            )
        self._subscribers_by_stream[stream_id] = count + 1
        self.stats.subscribers += 1

    def _release_subscriber(self, stream_id: str) -> None:
        count = self._subscribers_by_stream.pop(stream_id) - 1
        if count:
            self._subscribers_by_stream[stream_id] = count
        self.stats.subscribers -= 1

    def _counted(
        self, stream_id: str, batches: AsyncGenerator[list[SequencedEvent], None]
    ) -> AsyncGenerator[list[SequencedEvent], None]:
        """`batches`, counted: the subscriber slot is released exactly once, when the
        iteration ends, or when the generator is dropped without ever being started (a
        client gone before its response began: no `finally` runs then)."""
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._release_subscriber(stream_id)

        async def deliver() -> AsyncGenerator[list[SequencedEvent], None]:
            try:
                async for batch in batches:
                    yield batch
                    self.stats.events_delivered += len(batch)
            except SubscriberTooSlow:
                self.stats.slow_disconnects += 1
                raise
            finally:
                release()
                await batches.aclose()

        generator = deliver()
        weakref.finalize(generator, release)
        return generator

    def note_slow_subscriber(self) -> None:
        """A client that took no data within the send timeout was disconnected."""
        self.stats.slow_disconnects += 1
        # uvicorn then logs "ASGI callable returned without completing response": that
        # unfinished response is this one, cut on purpose.
        log.info("a subscriber that took no data was disconnected")


def _final_status(
    stop_reason: StopReason | None, result: AgentResult | None, failure: str | None
) -> tuple[RunStatus, str | None]:
    if stop_reason is StopReason.TIMED_OUT:
        return RunStatus.TIMED_OUT, stop_reason.value
    if stop_reason is not None:  # cancelled whatever the exit code (claude exits 0 on SIGINT)
        return RunStatus.CANCELLED, stop_reason.value
    if failure is not None:
        return RunStatus.FAILED, failure
    if result is None:
        return RunStatus.FAILED, "the agent ended without reporting a result"
    if result.is_error:
        return RunStatus.FAILED, result.error or "the agent reported an error"
    if result.exit_code not in (None, 0):  # None: a provider without processes
        return RunStatus.FAILED, result.error or f"agent exited with code {result.exit_code}"
    return RunStatus.SUCCEEDED, None

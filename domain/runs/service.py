"""The gateway's use cases in one place for the handlers: start, follow, cancel, read,
shut down. Each job lives in its own module of this package; this class only wires them."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncGenerator, Callable, Collection
from dataclasses import dataclass, replace

from domain.background import serve_together
from domain.clock import SystemClock
from domain.credentials import Credentials
from domain.errors import InputNotAccepted, InvalidRequest, RunNotFound
from domain.logcontext import bind_run, working_for
from domain.model import (
    AgentInput,
    AgentRequest,
    InputAnswer,
    Run,
    RunStatus,
    SequencedEvent,
    WaitingRun,
    validate_project_id,
)
from domain.redaction import ValuesInUse
from domain.registry import ProviderRegistry
from domain.runs.active import ActiveRuns
from domain.runs.feed import FeedingRunStore, RunFeed
from domain.runs.interaction import InteractionLimits, RunInteraction, no_such_request
from domain.runs.leases import LeaseKeeper
from domain.runs.lifecycle import RunLifecycle, RunLimits
from domain.runs.queueing import RunQueueing
from domain.runs.readiness import unreachable_backends
from domain.runs.stopping import RunStopper
from domain.runs.subscribers import Subscribers
from domain.stats import GatewayStats
from domain.templates import RunSettings, TemplateCatalog
from domain.webhooks import Webhooks, WebhookTarget
from domain.woodpecker import PipelineTrigger
from ports.clock import Clock
from ports.event_hub import EventHub
from ports.run_control import RunControl
from ports.run_queue import RunQueue
from ports.run_store import RunStore

log = logging.getLogger(__name__)


def new_secret_id() -> str:
    """128 random bits, URL-safe: run and stream ids must be unguessable."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True, slots=True)
class Storage:
    """Where runs live: the event streams, the records, what replicas tell each other, and
    the runs that wait."""

    hub: EventHub
    store: RunStore
    control: RunControl
    queue: RunQueue


class RunService:
    """The use cases. All methods run on one event loop."""

    def __init__(
        self,
        registry: ProviderRegistry,
        storage: Storage,
        *,
        limits: RunLimits | None = None,
        interaction: InteractionLimits | None = None,
        lease_ttl_s: float = 15.0,
        clock: Clock | None = None,
        new_id: Callable[[], str] = new_secret_id,
        credentials: Credentials | None = None,
        catalog: TemplateCatalog | None = None,
        webhooks: Webhooks | None = None,
        pipelines: PipelineTrigger | None = None,
    ) -> None:
        """`credentials`: the projects' credentials, given to their runs (None: none).
        `catalog`: the templates and projects that `start_for` resolves with."""
        clock = clock or SystemClock()
        limits = limits or RunLimits()
        self.stats = GatewayStats()
        self.values_in_use = ValuesInUse()  # for the log lines: handlers/logs.py
        self._catalog = catalog
        self._webhooks = webhooks
        self._feed = RunFeed(storage.hub)
        store = FeedingRunStore(storage.store, self._feed)
        self._storage = storage = replace(storage, store=store)
        self._new_id = new_id
        self._active = ActiveRuns()
        self._background: set[asyncio.Task[Run]] = set()
        self._stopper = RunStopper(self._active, storage.hub, storage.control, clock)
        self._interaction = RunInteraction(
            storage.hub,
            storage.store,
            self.stats,
            clock,
            interaction or InteractionLimits(),
            self._notify,
        )
        self._lifecycle = RunLifecycle(
            registry,
            storage.hub,
            storage.store,
            storage.control,
            self._active,
            self._stopper,
            self.stats,
            clock,
            new_id,
            limits,
            lease_ttl_s,
            self._interaction.observe,
            credentials,
            self.values_in_use,
            self._notify,
            pipelines,
        )
        self._leases = LeaseKeeper(
            self._active,
            self._stopper,
            storage.hub,
            storage.store,
            storage.control,
            self.stats,
            clock,
            lease_ttl_s,
            self._input_if_owned,
        )
        self._queueing = RunQueueing(
            storage.queue,
            self._lifecycle,
            self._active,
            storage.hub,
            storage.store,
            self.stats,
            clock,
            limits.max_queued,
        )
        self._subscribers = Subscribers(
            storage.hub,
            storage.store,
            self.stats,
            limits.max_subscribers,
            limits.max_subscribers_per_stream,
        )

    @property
    def active_count(self) -> int:
        return len(self._active)

    async def start(self, request: AgentRequest) -> Run:
        """Starts the run now if this replica has room and nobody waits; else it queues."""
        await self._lifecycle.admit(request)
        if await self._queueing.should_queue(request.project_id):
            return await self._queueing.enqueue(request, self._new_id(), self._new_id())
        return await self._lifecycle.start(request)

    def _notify(self, run: Run, event_type: str, targets: tuple[WebhookTarget, ...]) -> None:
        if self._webhooks is not None and targets:
            self._webhooks.notify(run, event_type, targets)

    async def start_for(
        self,
        project_id: str,
        prompt: str,
        given: RunSettings,
        session_id: str | None = None,
        queue_timeout_s: int | None = None,
        template: str | None = None,
    ) -> Run:
        """A run as a caller asks for it: `given` over the project's overrides over the
        template (`template`, or else the project's), then the deployment's defaults;
        validated (InvalidRequest names the field), then started as `start` does."""
        settings = given
        if self._catalog is not None:
            settings, template = await self._catalog.resolve(project_id, given, template)
        elif template is not None:
            raise InvalidRequest("template", "this gateway keeps no templates")
        request = AgentRequest.create(
            project_id,
            prompt,
            providers=settings.provider,
            session_id=session_id,
            model=settings.model,
            timeout_s=settings.timeout_s,
            metadata=settings.metadata,
            priority=settings.priority or 0,
            queue_timeout_s=queue_timeout_s,
            interactive=bool(settings.interactive),
            permission_mode=settings.permission_mode,
            credentials=settings.credentials,
            append_system_prompt=settings.append_system_prompt,
            allowed_tools=settings.allowed_tools or (),
            disallowed_tools=settings.disallowed_tools or (),
            max_turns=settings.max_turns,
            max_budget_usd=settings.max_budget_usd,
            mcp_servers=settings.mcp_servers,
            kube=settings.kube,
            webhooks=settings.webhooks or (),
            woodpecker=settings.woodpecker,
            template=template,
            settings=settings.summary(),
        )
        return await self.start(request)

    async def cancel(self, project_id: str, run_id: str) -> Run:
        """Stops the run; returns its final record once the agent has stopped (at once if
        it was still waiting in the queue)."""
        run = await self.get(project_id, run_id)
        bind_run(run_id, project_id)
        if run.status is RunStatus.QUEUED and await self._queueing.cancel_waiting(run):
            return await self.get(project_id, run_id)
        await self._stopper.cancel(run)
        return await self.get(project_id, run_id)

    async def send_input(
        self, project_id: str, run_id: str, agent_input: AgentInput, by: str | None = None
    ) -> Run:
        """Hands an interactive run's agent an answer, a message, an interrupt or a close;
        InputNotAccepted (409) if the run takes no such input now."""
        run = await self.get(project_id, run_id)
        bind_run(run_id, project_id)
        active = self._active.get(run_id)
        if active is not None:
            await self._interaction.send(active, agent_input, by)
            return await self.get(project_id, run_id)
        if run.status.finished or run.status is RunStatus.QUEUED:
            raise InputNotAccepted(f"the run is {run.status}: it takes no input")
        # Another replica drives it: checked against the shared record, then passed on.
        if isinstance(agent_input, InputAnswer):
            if agent_input.request_id not in {r.request_id for r in run.pending_inputs}:
                raise no_such_request(agent_input.request_id)
        await self._storage.control.request_input(run_id, agent_input, by)
        return run

    async def _input_if_owned(self, run_id: str, agent_input: AgentInput, by: str | None) -> None:
        """Input sent to another replica: acted on if this one drives the run."""
        active = self._active.get(run_id)
        if active is None:
            return
        with working_for(run_id, active.run.project_id):
            try:
                await self._interaction.send(active, agent_input, by)
            except Exception as exc:  # the sender has answered already: say it here
                log.warning("input from another replica not taken: %s", exc)

    def cancel_soon(self, project_id: str, run_id: str) -> None:
        """Cancels the run in the background (its caller cannot wait: a dropped client)."""
        task = asyncio.ensure_future(self.cancel(project_id, run_id))
        self._background.add(task)
        task.add_done_callback(self._cancelled_soon)

    def _cancelled_soon(self, task: asyncio.Task[Run]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background cancel failed: %s", task.exception())

    async def get(self, project_id: str, run_id: str) -> Run:
        validate_project_id(project_id)
        run = await self._storage.store.get(run_id)
        if run is None or run.project_id != project_id:
            raise RunNotFound(project_id, run_id)
        return run

    async def list_runs(
        self,
        projects: Collection[str] | None,
        status: RunStatus | None = None,
        limit: int = 100,
    ) -> list[Run]:
        """The newest runs of `projects` (None: of every project), of `status` if given."""
        for project_id in projects or ():
            validate_project_id(project_id)
        return await self._storage.store.list_recent(projects, status, limit)

    async def queue(self) -> list[WaitingRun]:
        """The waiting runs of the deployment, next first."""
        return await self._queueing.listing()

    async def open_stream(
        self, project_id: str, stream_id: str, after_seq: int = 0
    ) -> AsyncGenerator[list[SequencedEvent], None]:
        return await self._subscribers.open(project_id, stream_id, after_seq)

    def feed_position(self) -> int:
        """Where a client that lists runs now should follow the runs feed from."""
        return self._feed.last_seq

    def open_feed(
        self, shows: Callable[[Run], bool], after_seq: int = 0
    ) -> AsyncGenerator[list[SequencedEvent], None]:
        """The runs feed after `after_seq`: the records `shows` lets through as they are
        saved, counted like a run's stream."""
        return self._subscribers.open_feed(self._feed, shows, after_seq)

    def note_slow_subscriber(self) -> None:
        self._subscribers.note_slow()

    async def serve_control(self) -> None:
        """Runs until cancelled: cancel requests of other replicas, leases, orphans, and
        the queue (starts, timeouts, positions)."""
        loops = [self._leases.serve(), self._queueing.serve()]
        if self._webhooks is not None:
            loops.append(self._webhooks.serve())
        await serve_together(*loops)

    async def shutdown(self, grace_s: float) -> None:
        """Refuses new runs, ends the runs waiting in a queue that dies with this process,
        stops every running agent, and returns once all have published `done` (killing
        what is left after `grace_s`)."""
        self._lifecycle.accepting = False
        try:
            await self._queueing.end_waiting()
        except Exception:  # the backend is down: the running agents must stop all the same
            log.exception("cannot end the runs waiting in the queue")
        await self._stopper.stop_all(grace_s)
        if self._webhooks is not None:  # their run.finished deliveries reach the outbox
            await self._webhooks.drain()

    async def unreachable_backends(self) -> list[str]:
        return await unreachable_backends(self._storage.hub, self._storage.store)

"""Runs that wait for capacity: put in the fair queue when the limits are reached, started
when room frees up (on whichever replica has it), told their position while they wait, and
ended when cancelled, timed out, or left behind by a gateway that stops."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import datetime, timedelta

from domain.background import serve_together
from domain.errors import CredentialUnreadable, InvalidRequest, ProviderUnavailable, QueueFull
from domain.logcontext import bind_run, working_for
from domain.model import AgentRequest, Outcome, QueuedRun, Run, RunStatus, StatusEvent, WaitingRun
from domain.runs.active import ActiveRuns
from domain.runs.lifecycle import RunLifecycle, publish, record_end
from domain.runs.outcome import final_record
from domain.stats import GatewayStats
from ports.clock import Clock
from ports.event_hub import EventHub
from ports.run_queue import RunQueue
from ports.run_store import RunStore

log = logging.getLogger(__name__)
SHUTDOWN = "gateway shutting down before the run left the queue"


class RunQueueing:
    """The queue's use cases. `serve` runs for as long as the replica does: it starts
    queued runs while there is room, and once a second ends the runs that waited too long
    and tells the others their new position. All methods run on one event loop."""

    TICK_S = 1.0  # positions change on the stream at most this often

    def __init__(
        self,
        queue: RunQueue,
        lifecycle: RunLifecycle,
        active: ActiveRuns,
        hub: EventHub,
        store: RunStore,
        stats: GatewayStats,
        clock: Clock,
        max_queued: int,
    ) -> None:
        self._queue = queue
        self._lifecycle = lifecycle
        self._active = active
        self._hub = hub
        self._store = store
        self._stats = stats
        self._clock = clock
        self._max_queued = max_queued
        # Runs queued by this replica, with the position their stream last showed: each
        # replica tells its own runs their position (no two replicas repeat one).
        self._positions: dict[str, tuple[str, int]] = {}
        self._starting: set[asyncio.Task[None]] = set()  # runs taken, their agent starting

    async def should_queue(self, project_id: str) -> bool:
        """A run waits if the limits are reached or others are waiting (first come first)."""
        return not self._lifecycle.has_room(project_id) or await self._queue.count() > 0

    async def enqueue(self, request: AgentRequest, run_id: str, stream_id: str) -> Run:
        if await self._queue.count() >= self._max_queued:
            raise QueueFull(self._max_queued)
        bind_run(run_id, request.project_id)
        now = self._clock.now()
        run = Run(
            run_id=run_id,
            project_id=request.project_id,
            stream_id=stream_id,
            provider=None,
            status=RunStatus.QUEUED,
            created_at=now,
            outcome=Outcome(session_id=request.session_id),
            metadata=request.metadata,
            template=request.template,
            settings=request.settings,
        )
        deadline = None
        if request.queue_timeout_s is not None:
            deadline = now + timedelta(seconds=request.queue_timeout_s)
        await self._hub.create(stream_id)
        await self._store.save(run)
        try:
            position = await self._queue.push(
                QueuedRun(run_id, stream_id, request, now, deadline), self._max_queued
            )
        except QueueFull:  # others filled it since the count: this run ends before it waits
            await self._end(run, RunStatus.FAILED, "the queue is full", request)
            raise
        # Nothing awaits between the push and this publish on the memory queue, so no start
        # can come between; with a shared queue, a start takes far longer than this publish.
        await publish(self._hub, self._stats, stream_id, StatusEvent(RunStatus.QUEUED, position))
        self._positions[run_id] = (stream_id, position)
        self._stats.runs_queued += 1
        log.info("run queued at position %d", position)
        return run

    async def cancel_waiting(self, run: Run) -> bool:
        """Ends a run that is still waiting; False if it has left the queue (it is starting
        or running somewhere, and the run's stopper takes over)."""
        entry = await self._queue.remove(run.run_id)
        if entry is None:
            return False
        await self._end(
            run, RunStatus.CANCELLED, "cancelled by request while queued", entry.request
        )
        return True

    async def listing(self) -> list[WaitingRun]:
        return await self._queue.listing()

    async def serve(self) -> None:
        await serve_together(self._start_while_room(), self._wake_on_push(), self._tick())

    async def _wake_on_push(self) -> None:
        while True:
            await self._queue.wait_for_push(timeout_s=30)
            self._active.freed.set()

    async def _tick(self) -> None:
        while True:
            await self._clock.sleep(self.TICK_S)
            try:
                await self._end_expired()
                await self._tell_positions()
            except Exception:  # the store is unreachable: try again next tick
                log.exception("cannot keep the queue")
            self._active.freed.set()  # also a safety net for a missed wake-up

    async def _start_while_room(self) -> None:
        while True:
            await self._active.freed.wait()
            self._active.freed.clear()
            try:
                while self._lifecycle.accepting and self._lifecycle.has_room():
                    entry = await self._queue.take(self._lifecycle.full_projects())
                    if entry is None:
                        break
                    self._positions.pop(entry.run_id, None)
                    # Counted from the moment it leaves the queue (the limits see it, a
                    # cancel finds it); started beside the others, as an agent's start can
                    # take a while (a pod's exec).
                    self._active.reserve(entry.run_id, entry.project_id)
                    task = asyncio.create_task(self._start(entry, self._clock.now()))
                    self._starting.add(task)
                    task.add_done_callback(self._starting.discard)
            except Exception:  # the queue is unreachable: the next wake-up tries again
                log.exception("cannot start queued runs")

    async def _start(self, entry: QueuedRun, left_queue_at: datetime) -> None:
        try:
            with working_for(entry.run_id, entry.project_id):
                await self._start_reserved(entry, left_queue_at)
        except Exception:
            log.exception("run %s: cannot start it", entry.run_id)
        finally:
            self._active.unreserve(entry.run_id)

    async def _start_reserved(self, entry: QueuedRun, left_queue_at: datetime) -> None:
        run = await self._store.get(entry.run_id)
        if run is None:  # its record is gone (retention): nobody can follow it
            log.warning("run %s left the queue without a record; dropped", entry.run_id)
            return
        try:
            started = await self._lifecycle.start_agent(run.run_id, entry.request)
        except Exception as exc:  # it has left the queue: whatever went wrong, it ends
            # (an unavailable provider, a credential that does not open or was deleted while
            # it waited, a process that could not start)
            if not isinstance(exc, ProviderUnavailable | CredentialUnreadable | InvalidRequest):
                log.exception("run %s: cannot start its agent", run.run_id)
            await self._end(
                run, RunStatus.FAILED, f"the run could not be started: {exc}", entry.request
            )
            return
        running = replace(
            run,
            provider=started.provider,
            status=RunStatus.RUNNING,
            started_at=left_queue_at,
            providers_skipped=started.skipped,
            credentials=started.credentials.names,
        )
        try:
            await self._lifecycle.launch(running, started, entry.request, from_queue=True)
        except Exception as exc:  # the backend failed: its agent was stopped; end the run
            log.exception("run %s: cannot start it", run.run_id)
            await self._end(
                run, RunStatus.FAILED, f"the run could not be started: {exc}", entry.request
            )

    async def _end_expired(self) -> None:
        for run_id in await self._queue.expired(self._clock.now()):
            taken = await self._take_out(run_id)
            if taken is not None:
                entry, run = taken
                timeout = entry.request.queue_timeout_s
                with working_for(run_id, run.project_id):
                    await self._end(
                        run,
                        RunStatus.TIMED_OUT,
                        f"waited in the queue longer than queue_timeout_s ({timeout} s)",
                        entry.request,
                    )

    async def _take_out(self, run_id: str) -> tuple[QueuedRun, Run] | None:
        """Removes a waiting run from the queue, with its record; None if it had left (to
        another replica, which ends it) or has no record any more."""
        entry = await self._queue.remove(run_id)
        run = await self._store.get(run_id) if entry is not None else None
        return None if entry is None or run is None else (entry, run)

    async def _tell_positions(self) -> None:
        if not self._positions:
            return
        waiting = {entry.run_id: n for n, entry in enumerate(await self._queue.listing(), 1)}
        for run_id, (stream_id, shown) in list(self._positions.items()):
            position = waiting.get(run_id)
            if position is None:  # it left the queue
                self._positions.pop(run_id, None)
            elif position != shown and run_id in self._positions:  # not started meanwhile
                await publish(
                    self._hub, self._stats, stream_id, StatusEvent(RunStatus.QUEUED, position)
                )
                self._positions[run_id] = (stream_id, position)

    async def end_waiting(self) -> None:
        """At shutdown: the runs waiting in a queue that dies with this process end
        cancelled (a shared queue keeps them for the other replicas or the next start)."""
        await asyncio.gather(*self._starting, return_exceptions=True)  # they run, then stop
        if self._queue.outlives_process:
            return
        for waiting in await self._queue.listing():
            taken = await self._take_out(waiting.run_id)
            if taken is not None:
                await self._end(taken[1], RunStatus.CANCELLED, SHUTDOWN, taken[0].request)

    async def _end(self, run: Run, status: RunStatus, error: str, request: AgentRequest) -> None:
        """A run that never ran: its final record and `done`, with nothing to report."""
        self._positions.pop(run.run_id, None)
        final, done = final_record(run, status, Outcome(), error, self._clock.now(), None)
        await record_end(self._store, self._hub, self._stats, final, done)
        self._lifecycle.notify(final, "run.finished", request.webhooks)
        self._stats.ended_in_queue[status] += 1
        log.info("queued run ended: %s (%s)", status, error)

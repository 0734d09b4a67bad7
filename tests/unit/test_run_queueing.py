"""The queue's use cases against fakes of every port and a clock that moves on command."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

from domain.model import AgentRequest, DoneEvent, RunStatus, StatusEvent
from domain.registry import ProviderRegistry
from domain.runs import RunLimits, RunService
from tests.fakes.agents import FakeCodeAgent
from tests.fakes.clock import FakeClock, settle
from tests.fakes.storage import memory_storage


@contextlib.asynccontextmanager
async def serving(*agents: tuple[str, FakeCodeAgent], **limits) -> AsyncIterator[tuple]:
    """A service with one running run allowed, serving its queue; and its clock."""
    clock = FakeClock()
    registry = ProviderRegistry()
    for name, agent in agents:
        registry.register(name, agent)
    service = RunService(
        registry, memory_storage(), limits=RunLimits(max_runs=1, **limits), clock=clock
    )
    served = asyncio.create_task(service.serve_control())
    try:
        yield service, clock
    finally:
        served.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await served


async def events_of(service: RunService, run) -> list:
    seen = []
    async for batch in await service.open_stream(run.project_id, run.stream_id):
        seen += [item.event for item in batch]
    return seen


async def test_a_run_with_room_starts_at_once_without_status_events():
    async with serving(("fake", FakeCodeAgent())) as (service, _):
        run = await service.start(AgentRequest.create("p", "hi"))
        assert run.status is RunStatus.RUNNING
        events = await events_of(service, run)
        assert not [e for e in events if isinstance(e, StatusEvent)]


async def test_a_queued_run_starts_when_room_frees_and_its_stream_says_so():
    agent = FakeCodeAgent(hang=True)
    async with serving(("fake", agent)) as (service, _):
        holder = await service.start(AgentRequest.create("p", "first"))
        waiting = await service.start(AgentRequest.create("q", "second"))
        assert (waiting.status, waiting.provider) == (RunStatus.QUEUED, None)
        await service.cancel("p", holder.run_id)
        await settle()
        record = await service.get("q", waiting.run_id)
        assert (record.status, record.provider) == (RunStatus.RUNNING, "fake")
        assert record.started_at is not None
        await service.cancel("q", waiting.run_id)
        events = await events_of(service, waiting)
        assert events[:2] == [StatusEvent(RunStatus.QUEUED, 1), StatusEvent(RunStatus.RUNNING)]
        assert isinstance(events[-1], DoneEvent) and events[-1].provider == "fake"


async def test_the_fallback_chain_is_evaluated_when_the_run_leaves_the_queue():
    first, second = FakeCodeAgent(hang=True), FakeCodeAgent()
    async with serving(("first", first), ("second", second)) as (service, _):
        holder = await service.start(AgentRequest.create("p", "hold", providers=["first"]))
        chain = ["first", "second"]
        waiting = await service.start(AgentRequest.create("p", "go", providers=chain))
        first.unavailable = "went down while the run waited"
        await service.cancel("p", holder.run_id)
        events = await events_of(service, waiting)
        record = await service.get("p", waiting.run_id)
        assert record.provider == "second" and record.status is RunStatus.SUCCEEDED
        assert record.providers_skipped == ("first: went down while the run waited",)
        assert isinstance(events[-1], DoneEvent)


async def test_a_queued_run_whose_providers_all_fail_ends_failed_saying_why():
    agent = FakeCodeAgent(hang=True)
    async with serving(("fake", agent)) as (service, _):
        holder = await service.start(AgentRequest.create("p", "hold"))
        waiting = await service.start(AgentRequest.create("p", "go"))
        agent.fails_to_start = "the pod is gone"
        await service.cancel("p", holder.run_id)
        events = await events_of(service, waiting)
        assert events[-1].status is RunStatus.FAILED and "the pod is gone" in events[-1].error
        assert (await service.get("p", waiting.run_id)).status is RunStatus.FAILED


async def test_a_cancel_while_the_agent_is_starting_stops_it_once_it_runs():
    gate = asyncio.Event()
    agent = FakeCodeAgent(hang=True)
    async with serving(("fake", agent)) as (service, _):
        holder = await service.start(AgentRequest.create("p", "hold"))
        waiting = await service.start(AgentRequest.create("p", "go"))
        agent.start_gate = gate  # the next start hangs until the gate opens
        await service.cancel("p", holder.run_id)
        await settle()  # taken from the queue; its agent is starting
        cancel = asyncio.create_task(service.cancel("p", waiting.run_id))
        await settle()
        assert not cancel.done()
        gate.set()
        record = await asyncio.wait_for(cancel, 10)
        assert record.status is RunStatus.CANCELLED and record.provider == "fake"
        assert waiting.run_id in agent.stops


async def test_queue_timeout_ends_a_waiting_run_when_its_time_comes():
    async with serving(("fake", FakeCodeAgent(hang=True))) as (service, clock):
        holder = await service.start(AgentRequest.create("p", "hold"))
        waiting = await service.start(AgentRequest.create("p", "go", queue_timeout_s=30))
        await clock.advance(29)
        assert (await service.get("p", waiting.run_id)).status is RunStatus.QUEUED
        await clock.advance(1)
        record = await service.get("p", waiting.run_id)
        assert record.status is RunStatus.TIMED_OUT and "queue_timeout_s (30 s)" in record.error
        assert await service.queue() == []
        await service.cancel("p", holder.run_id)


async def test_positions_are_told_again_when_they_change_at_most_once_a_tick():
    async with serving(("fake", FakeCodeAgent(hang=True))) as (service, clock):
        holders = [await service.start(AgentRequest.create("p", "hold"))]
        waiting = [await service.start(AgentRequest.create("p", f"w{i}")) for i in range(3)]
        await service.cancel("p", waiting[0].run_id)
        await service.cancel("p", waiting[1].run_id)
        await clock.advance(1)
        await service.cancel("p", holders[0].run_id)
        await settle()
        await service.cancel("p", waiting[2].run_id)
        statuses = [e for e in await events_of(service, waiting[2]) if isinstance(e, StatusEvent)]
        assert statuses == [
            StatusEvent(RunStatus.QUEUED, 3),
            StatusEvent(RunStatus.QUEUED, 1),  # two changes within one tick: told once
            StatusEvent(RunStatus.RUNNING),
        ]


async def test_shutdown_ends_the_runs_waiting_in_a_memory_queue():
    async with serving(("fake", FakeCodeAgent(hang=True))) as (service, _):
        holder = await service.start(AgentRequest.create("p", "hold"))
        waiting = await service.start(AgentRequest.create("p", "go"))
        await service.shutdown(grace_s=5)
        assert (await service.get("p", holder.run_id)).status is RunStatus.CANCELLED
        record = await service.get("p", waiting.run_id)
        assert record.status is RunStatus.CANCELLED and "shutting down" in record.error
        assert await service.queue() == []


async def test_projects_at_their_limit_let_other_projects_start():
    agent = FakeCodeAgent(hang=True)
    clock = FakeClock()
    registry = ProviderRegistry()
    registry.register("fake", agent)
    limits = RunLimits(max_runs=3, max_runs_per_project=1)
    service = RunService(registry, memory_storage(), limits=limits, clock=clock)
    served = asyncio.create_task(service.serve_control())
    try:
        a1 = await service.start(AgentRequest.create("a", "1"))
        a2 = await service.start(AgentRequest.create("a", "2"))  # a is at its limit
        b1 = await service.start(AgentRequest.create("b", "1"))  # queued: a2 waits first
        await settle()
        assert (await service.get("b", b1.run_id)).status is RunStatus.RUNNING
        assert (await service.get("a", a2.run_id)).status is RunStatus.QUEUED
        await service.cancel("a", a1.run_id)
        await settle()
        assert (await service.get("a", a2.run_id)).status is RunStatus.RUNNING
    finally:
        await service.shutdown(grace_s=1)
        served.cancel()

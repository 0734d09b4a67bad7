"""The use cases against fakes of every port: done exactly once, whatever happens."""

import asyncio

import pytest

from adapters.memory import MemoryEventHub
from domain.errors import ProviderUnavailable, RunNotFound, ShuttingDown, StreamNotFound
from domain.model import AgentRequest, DoneEvent, ErrorEvent, RunStatus
from domain.registry import ProviderRegistry
from domain.runs import RunService
from tests.fakes.agents import FakeCodeAgent
from tests.fakes.clock import FakeClock
from tests.fakes.storage import memory_storage


def service_with(*agents: tuple[str, FakeCodeAgent], **options) -> RunService:
    registry = ProviderRegistry()
    for name, agent in agents:
        registry.register(name, agent)
    return RunService(registry, memory_storage(), **options)


async def events_of(service: RunService, run) -> list:
    seen = []
    async for batch in await service.open_stream(run.project_id, run.stream_id):
        seen += batch
    return seen


async def finished(service: RunService, run):
    await events_of(service, run)
    return await service.get(run.project_id, run.run_id)


async def test_a_run_publishes_its_output_then_exactly_one_done():
    service = service_with(("fake", FakeCodeAgent(texts=("a", "b"))))
    run = await service.start(AgentRequest.create("p", "hi"))
    events = await events_of(service, run)
    assert [e.event.content for e in events[:-1]] == ["a", "b"]
    assert isinstance(events[-1].event, DoneEvent)
    assert events[-1].event.status is RunStatus.SUCCEEDED
    assert events[-1].event.outcome.output_tokens == 2


async def test_an_agent_that_crashes_gives_error_then_done_failed():
    service = service_with(("fake", FakeCodeAgent(crash_after=1)))
    run = await service.start(AgentRequest.create("p", "hi"))
    events = await events_of(service, run)
    assert isinstance(events[-2].event, ErrorEvent)
    assert "fake agent crashed" in events[-2].event.message
    assert events[-1].event.status is RunStatus.FAILED
    record = await service.get("p", run.run_id)
    assert record.status is RunStatus.FAILED and record.finished_at is not None


async def test_non_zero_exit_is_failed():
    service = service_with(("fake", FakeCodeAgent(exit_code=3)))
    record = await finished(service, await service.start(AgentRequest.create("p", "hi")))
    assert record.status is RunStatus.FAILED and record.outcome.exit_code == 3


async def test_cancel_returns_only_after_the_agent_stopped():
    agent = FakeCodeAgent(hang=True, stop_delay_s=0.2)
    service = service_with(("fake", agent))
    run = await service.start(AgentRequest.create("p", "hi"))
    await asyncio.sleep(0.01)
    record = await service.cancel("p", run.run_id)
    assert record.status is RunStatus.CANCELLED
    assert agent.runs[run.run_id].stopped.is_set()
    events = await events_of(service, run)
    assert [type(e.event) for e in events].count(DoneEvent) == 1
    assert await service.cancel("p", run.run_id) == record  # idempotent


async def test_timeout_gives_timed_out_when_its_time_comes_and_not_before():
    clock = FakeClock()
    service = service_with(("fake", FakeCodeAgent(hang=True)), clock=clock)
    run = await service.start(AgentRequest.create("p", "hi", timeout_s=30))
    await clock.advance(29)
    assert (await service.get("p", run.run_id)).status is RunStatus.RUNNING
    await clock.advance(1)
    record = await finished(service, run)
    assert record.status is RunStatus.TIMED_OUT
    assert record.finished_at == clock.now()


async def test_shutdown_stops_every_run_and_refuses_new_ones():
    agent = FakeCodeAgent(hang=True)
    service = service_with(("fake", agent))
    runs = [await service.start(AgentRequest.create("p", f"hi {i}")) for i in range(3)]
    await asyncio.sleep(0.01)
    await service.shutdown(grace_s=5)
    for run in runs:
        assert (await service.get("p", run.run_id)).status is RunStatus.CANCELLED
    with pytest.raises(ShuttingDown):
        await service.start(AgentRequest.create("p", "late"))


async def test_shutdown_past_grace_still_publishes_done():
    agent = FakeCodeAgent(hang=True, stop_delay_s=60)  # never stops in time
    service = service_with(("fake", agent))
    run = await service.start(AgentRequest.create("p", "hi"))
    await asyncio.sleep(0.01)
    await service.shutdown(grace_s=0.1)
    events = await events_of(service, run)
    assert isinstance(events[-1].event, DoneEvent)
    assert events[-1].event.status is RunStatus.CANCELLED


async def test_unavailable_provider_is_refused_before_the_run_starts():
    service = service_with(("fake", FakeCodeAgent(unavailable="binary missing")))
    with pytest.raises(ProviderUnavailable, match="binary missing"):
        await service.start(AgentRequest.create("p", "hi"))
    assert await service.list_runs("p") == []


async def test_a_chain_skips_unavailable_providers_and_says_why():
    service = service_with(
        ("first", FakeCodeAgent(unavailable="down")), ("second", FakeCodeAgent())
    )
    run = await service.start(AgentRequest.create("p", "hi", providers=["first", "second"]))
    assert run.provider == "second" and run.providers_skipped == ("first: down",)


async def test_runs_and_streams_belong_to_their_project():
    service = service_with(("fake", FakeCodeAgent()))
    run = await service.start(AgentRequest.create("a", "hi"))
    with pytest.raises(RunNotFound):
        await service.get("b", run.run_id)
    with pytest.raises(StreamNotFound):
        await service.open_stream("b", run.stream_id)


async def test_a_provider_that_fails_to_start_is_skipped_for_the_next():
    service = service_with(
        ("first", FakeCodeAgent(fails_to_start="pod missing")), ("second", FakeCodeAgent())
    )
    run = await service.start(AgentRequest.create("p", "hi", providers=["first", "second"]))
    assert run.provider == "second" and run.providers_skipped == ("first: pod missing",)
    with pytest.raises(ProviderUnavailable, match="pod missing"):
        await service.start(AgentRequest.create("p", "hi", providers=["first"]))


class UnreachableHub(MemoryEventHub):
    """An EventHub whose backend is down."""

    async def create(self, stream_id: str, after_seq: int = 0) -> None:
        raise ConnectionError("hub down")


async def test_an_agent_whose_run_cannot_be_recorded_is_stopped():
    agent = FakeCodeAgent(hang=True)
    registry = ProviderRegistry()
    registry.register("fake", agent)
    service = RunService(registry, memory_storage(UnreachableHub()))
    with pytest.raises(ConnectionError):
        await service.start(AgentRequest.create("p", "hi"))
    assert len(agent.started) == 1 and len(agent.stops) == 1
    assert await service.list_runs("p") == []

"""What the run service counts for /metrics, and the subscriber limits it enforces."""

import asyncio
import gc

import pytest

from adapters.memory import MemoryEventHub
from domain.errors import LimitExceeded
from domain.model import AgentRequest, OutputEvent, OutputType
from domain.registry import ProviderRegistry
from domain.runs import RunLimits, RunService
from domain.stats import Histogram
from tests.fakes.agents import FakeCodeAgent
from tests.fakes.clock import FakeClock
from tests.fakes.storage import memory_storage


def service_with(*agents, **limits) -> RunService:
    registry = ProviderRegistry()
    for name, agent in agents:
        registry.register(name, agent)
    storage = memory_storage(MemoryEventHub(max_pending=3))
    return RunService(registry, storage, limits=RunLimits(**limits))


async def drain(batches) -> int:
    count = 0
    async for batch in batches:
        count += len(batch)
    return count


def test_histogram_buckets_are_cumulative_with_a_sum():
    histogram = Histogram((1.0, 5.0))
    for value in (0.5, 1.0, 3.0, 60.0):
        histogram.observe(value)
    assert histogram.cumulative() == [(1.0, 2), (5.0, 3), (float("inf"), 4)]
    assert histogram.total == 64.5


async def test_runs_are_counted_by_provider_and_status_with_durations():
    service = service_with(
        ("good", FakeCodeAgent(texts=("a", "b"))),
        ("bad", FakeCodeAgent(crash_after=1)),
        ("down", FakeCodeAgent(fails_to_start="refused")),
    )
    for provider in ("good", "good", "bad"):
        run = await service.start(AgentRequest.create("p", "hi", providers=provider))
        delivered = await drain(await service.open_stream("p", run.stream_id))
    with pytest.raises(Exception, match="refused"):
        await service.start(AgentRequest.create("p", "hi", providers="down"))
    stats = service.stats
    assert stats.runs_started == {"good": 2, "bad": 1}
    assert stats.runs_finished == {("good", "succeeded"): 2, ("bad", "failed"): 1}
    assert stats.run_seconds["good"].cumulative()[-1][1] == 2
    assert stats.upstream_errors == {"bad": 1, "down": 1}
    # good: 2 texts + done each; bad: 1 text + error + done
    assert stats.events_published == 2 * 3 + 3 and delivered == 3
    assert stats.events_delivered == 2 * 3 + 3
    assert stats.subscribers == 0


async def test_cancels_are_counted_with_their_time_to_stop():
    clock = FakeClock()
    registry = ProviderRegistry()
    registry.register("fake", FakeCodeAgent(hang=True, stop_delay_s=0.3, clock=clock))
    service = RunService(registry, memory_storage(), clock=clock)
    run = await service.start(AgentRequest.create("p", "hi"))
    await asyncio.sleep(0)
    cancel = asyncio.ensure_future(service.cancel("p", run.run_id))
    await clock.advance(0.3)  # the agent takes 0.3 s to stop
    await cancel
    assert service.stats.cancels == 1
    assert service.stats.stop_seconds.cumulative() == [
        (b, 1 if b >= 0.5 else 0) for b, _ in service.stats.stop_seconds.cumulative()
    ]
    assert service.stats.stop_seconds.total == pytest.approx(0.3)


async def test_subscribers_past_the_per_stream_limit_are_refused_until_one_leaves():
    service = service_with(("fake", FakeCodeAgent(hang=True)), max_subscribers_per_stream=2)
    run = await service.start(AgentRequest.create("p", "hi"))
    first = await service.open_stream("p", run.stream_id)
    second = await service.open_stream("p", run.stream_id)
    with pytest.raises(LimitExceeded) as refused:
        await service.open_stream("p", run.stream_id)
    assert refused.value.limit == "max_subscribers_per_stream" and refused.value.retry_after_s
    assert service.stats.subscribers == 2
    await first.__anext__()
    await first.aclose()
    third = await service.open_stream("p", run.stream_id)
    assert service.stats.subscribers == 2
    del second  # never started (a client gone before its response began): released
    gc.collect()
    assert service.stats.subscribers == 1
    del third
    assert service.stats.subscribers == 0


async def test_subscribers_past_the_total_limit_are_refused():
    service = service_with(("fake", FakeCodeAgent(hang=True)), max_subscribers=1)
    one = await service.start(AgentRequest.create("p", "hi"))
    two = await service.start(AgentRequest.create("p", "hi"))
    kept = await service.open_stream("p", one.stream_id)
    with pytest.raises(LimitExceeded) as refused:
        await service.open_stream("p", two.stream_id)
    assert refused.value.limit == "max_subscribers"
    del kept


async def test_a_subscriber_dropped_for_being_slow_is_counted():
    hub = MemoryEventHub(max_pending=3)
    registry = ProviderRegistry()
    registry.register("fake", FakeCodeAgent(texts=("a",), hang=True))
    service = RunService(registry, memory_storage(hub))
    run = await service.start(AgentRequest.create("p", "hi"))
    slow = await service.open_stream("p", run.stream_id)
    await slow.__anext__()  # started, then does not read while 5 events pass a limit of 3
    for _ in range(5):
        await hub.publish(run.stream_id, OutputEvent(OutputType.TEXT, "x"))
    with pytest.raises(Exception, match="too far behind"):
        await slow.__anext__()
    assert service.stats.slow_disconnects == 1
    assert service.stats.subscribers == 0

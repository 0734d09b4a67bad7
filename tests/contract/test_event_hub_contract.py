"""One suite for every EventHub: the memory hub and the Redis hub cannot drift apart."""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest
import redis.asyncio as redis

from adapters.memory import MemoryEventHub
from adapters.redis_store import RedisEventHub
from domain.errors import StreamNotFound
from domain.model import DoneEvent, ErrorEvent, GapEvent, OutputEvent, OutputType, RunStatus


@pytest.fixture(params=["memory", "redis"])
async def make_hub(request):
    clients = []

    def make(retain_events: int = 10_000):
        if request.param == "memory":
            return MemoryEventHub(retain_events=retain_events)
        client = redis.from_url(request.getfixturevalue("redis_server").url)
        clients.append(client)
        return RedisEventHub(
            client, retain_events=retain_events, block_ms=200, prefix=f"t{uuid.uuid4().hex}"
        )

    yield make
    for client in clients:
        await client.aclose()


def text(i: int) -> OutputEvent:
    return OutputEvent(OutputType.TEXT, f"t{i}", {"n": i})


async def collect(batches) -> list:
    seen = []
    async for batch in batches:
        seen += batch
    return seen


DONE = DoneEvent(RunStatus.SUCCEEDED, 0, 5, "ok", "s", 1, 2, None, "p")


async def test_seq_starts_at_one_and_events_round_trip(make_hub):
    hub = make_hub()
    await hub.create("s")
    events = [text(1), ErrorEvent("bad", "par"), DONE]
    assert [await hub.publish("s", e) for e in events] == [1, 2, 3]
    await hub.close("s")
    got = await collect(hub.subscribe("s"))
    assert [(e.seq, e.event) for e in got] == [(1, events[0]), (2, events[1]), (3, DONE)]


async def test_late_subscriber_gets_replay_then_live_without_gap_or_duplicate(make_hub):
    hub = make_hub()
    await hub.create("s")
    for i in range(5):
        await hub.publish("s", text(i))
    reader = asyncio.ensure_future(collect(hub.subscribe("s")))
    await asyncio.sleep(0.05)
    for i in range(5, 300):
        await hub.publish("s", text(i))
    await hub.close("s")
    assert [e.seq for e in await asyncio.wait_for(reader, 10)] == list(range(1, 301))


async def test_resume_after_a_seq(make_hub):
    hub = make_hub()
    await hub.create("s")
    for i in range(10):
        await hub.publish("s", text(i))
    await hub.close("s")
    assert [e.seq for e in await collect(hub.subscribe("s", 7))] == [8, 9, 10]
    assert await collect(hub.subscribe("s", 10)) == []


async def test_resume_past_retention_starts_with_a_gap(make_hub):
    hub = make_hub(retain_events=3)
    await hub.create("s")
    for i in range(500):
        await hub.publish("s", text(i))
    await hub.close("s")
    events = await collect(hub.subscribe("s", 2))
    assert isinstance(events[0].event, GapEvent)
    first = events[0].event.first_available
    assert events[0].seq == first - 1 and first > 3
    assert [e.seq for e in events[1:]] == list(range(first, 501))


async def test_unknown_streams_are_not_found(make_hub):
    hub = make_hub()
    assert not await hub.exists("nope")
    with pytest.raises(StreamNotFound):
        await collect(hub.subscribe("nope"))


async def test_many_subscribers_see_the_same_sequence(make_hub):
    hub = make_hub()
    await hub.create("s")
    readers = [asyncio.ensure_future(collect(hub.subscribe("s"))) for _ in range(20)]
    await asyncio.sleep(0.05)
    for i in range(100):
        await hub.publish("s", text(i))
    await hub.close("s")
    results = await asyncio.wait_for(asyncio.gather(*readers), 10)
    assert all([e.seq for e in r] == list(range(1, 101)) for r in results)


async def _publish_then_close(hub, stream_id: str, rng: random.Random) -> None:
    for i in range(60):
        await hub.publish(stream_id, text(i))
        if rng.random() < 0.2:
            await asyncio.sleep(0)
    await hub.close(stream_id)


async def _join_later(hub, stream_id: str, rng: random.Random) -> list[int]:
    await asyncio.sleep(rng.random() * 0.005)
    return [e.seq for e in await collect(hub.subscribe(stream_id))]


async def test_subscribers_joining_at_any_moment_get_everything_once(make_hub):
    """Regression: a Redis subscriber whose shared reader started after its replay lost
    the events in between (the last one, typically)."""
    rng = random.Random(3)
    for trial in range(40):
        hub = make_hub()
        await hub.create("s")
        _, seen = await asyncio.gather(
            _publish_then_close(hub, "s", rng), _join_later(hub, "s", rng)
        )
        assert seen == list(range(1, 61)), trial

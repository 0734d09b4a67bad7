"""One suite for every EventHub: the memory, Redis and PostgreSQL hubs cannot drift apart."""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest

from adapters.memory import MemoryEventHub
from adapters.postgres import PostgresBackend
from adapters.redis_store import BLOCK_MS, RedisEventHub, connect
from domain.errors import StreamNotFound, SubscriberTooSlow
from domain.model import (
    DoneEvent,
    ErrorEvent,
    GapEvent,
    Outcome,
    OutputEvent,
    OutputType,
    RunStatus,
)


@pytest.fixture(params=["memory", "redis", "postgres"])
async def make_hub(request):
    clients = []
    backends = []
    if request.param == "postgres":  # keeps everything: retention and cuts do not apply
        url = request.getfixturevalue("database_url")
        backends = [PostgresBackend(url, history_days=30) for _ in range(2)]
        for backend in backends:
            await backend.start()

    def make(retain_events: int = 10_000, max_pending: int = 10_000):
        if request.param == "postgres":
            return backends[0].hub
        if request.param == "memory":
            return MemoryEventHub(retain_events=retain_events, max_pending=max_pending)
        client = connect(request.getfixturevalue("redis_server").url, max_connections=50)
        clients.append(client)
        return RedisEventHub(
            client,
            retain_events=retain_events,
            max_pending=max_pending,
            block_ms=200,
            prefix=f"t{uuid.uuid4().hex}",
        )

    yield make
    for client in clients:
        await client.aclose()
    for backend in backends:
        await backend.close()


def text(i: int) -> OutputEvent:
    return OutputEvent(OutputType.TEXT, f"t{i}", {"n": i})


async def collect(batches) -> list:
    seen = []
    async for batch in batches:
        seen += batch
    return seen


DONE = DoneEvent(RunStatus.SUCCEEDED, Outcome(0, "ok", "s", None, 1, 2, None), 5, "p", None)


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


async def test_resume_past_retention_starts_with_a_gap(make_hub, request):
    if request.node.callspec.params["make_hub"] == "postgres":
        pytest.skip("PostgreSQL retains every event for the history's days")
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
        hub, stream_id = make_hub(), f"s{trial}"
        await hub.create(stream_id)
        _, seen = await asyncio.gather(
            _publish_then_close(hub, stream_id, rng), _join_later(hub, stream_id, rng)
        )
        assert seen == list(range(1, 61)), trial


async def _publish_after(hub, stream_id: str, delay_s: float) -> None:
    await asyncio.sleep(delay_s)
    await hub.publish(stream_id, text(1))


async def test_a_subscriber_of_an_open_stream_gets_what_was_published_as_it_joined(make_hub):
    """Regression: a Redis subscriber got an event published between its replay and its
    shared reader's start only with the next event, which on a quiet stream that stays open
    (the runs feed) may never come."""
    rng = random.Random(5)
    for trial in range(60):
        hub, stream_id = make_hub(), f"o{trial}"
        await hub.create(stream_id)
        await hub.publish(stream_id, text(0))

        publisher = asyncio.ensure_future(_publish_after(hub, stream_id, rng.random() * 0.003))
        batches = hub.subscribe(stream_id, 1)
        try:
            first = await asyncio.wait_for(anext(batches), 2)
        finally:
            await batches.aclose()
            await publisher
        assert [e.seq for e in first] == [2], trial


async def test_a_reader_slower_than_the_run_gets_every_event_with_reconnects_and_no_gap(
    make_hub, request
):
    """A subscriber cut for falling behind resumes from its last seq, which is still
    retained (retention at least twice the cut threshold). In memory: the gateway's defaults
    (retain 100,000, cut past 10,000 unread) and a 50,000-event run; Redis, whose publishes
    are round trips, the same ratio at a tenth of the size."""
    backend = request.node.callspec.params["make_hub"]
    if backend == "memory":
        total, max_pending, retain, per_event_s = 50_000, 10_000, 100_000, 0.00005
    elif backend == "postgres":  # nothing to cut: a reader reads the table at its pace
        total, max_pending, retain, per_event_s = 2_000, 500, 5_000, 0.002
    else:
        total, max_pending, retain, per_event_s = 5_000, 500, 5_000, 0.002
    hub = make_hub(retain_events=retain, max_pending=max_pending)
    await hub.create("s")

    async def produce() -> None:
        for i in range(1, total + 1):
            await hub.publish("s", OutputEvent(OutputType.TEXT, f"t{i}"))
            if i % 100 == 0:
                await asyncio.sleep(0)
        await hub.close("s")

    producer = asyncio.ensure_future(produce())
    seen: list = []
    cuts = 0
    while True:
        try:
            async for batch in hub.subscribe("s", seen[-1].seq if seen else 0):
                seen += batch
                await asyncio.sleep(len(batch) * per_event_s)  # slower than the producer
            break
        except SubscriberTooSlow:
            cuts += 1
    await producer
    assert cuts >= 1 or backend == "postgres"
    assert not any(isinstance(e.event, GapEvent) for e in seen)
    assert [e.seq for e in seen] == list(range(1, total + 1))


def test_a_redis_client_waits_for_a_reply_longer_than_a_follower_blocks():
    """A follower's XREAD is answered after up to BLOCK_MS; a client that gave up sooner
    ended quiet streams early (redis-py's default socket timeout is 5 s, BLOCK_MS 5,000)."""
    client = connect("redis://127.0.0.1:1/0", max_connections=1)  # connects on first use
    assert client.connection_pool.connection_kwargs["socket_timeout"] > BLOCK_MS / 1000 + 1

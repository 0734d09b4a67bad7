"""One suite for every RunQueue: memory, Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as redis

from adapters.memory import MemoryRunQueue
from adapters.postgres import PostgresBackend
from adapters.redis_store import RedisRunQueue
from domain.errors import QueueFull
from domain.model import AgentRequest, QueuedRun

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["memory", "redis", "postgres"])
async def make_queue(request):
    """A factory: every queue it makes shares one storage (replicas of one deployment)."""
    if request.param == "memory":
        queue = MemoryRunQueue()
        yield lambda: queue
        return
    if request.param == "postgres":
        # Replicas: backends of their own (pools, listeners) on one database.
        url = request.getfixturevalue("database_url")
        backends = [PostgresBackend(url, history_days=30) for _ in range(2)]
        for backend in backends:
            await backend.start()
        handed = itertools.cycle(backends)
        yield lambda: next(handed).queue
        for backend in backends:
            await backend.close()
        return
    prefix = f"t{uuid.uuid4().hex}"
    clients = []

    def make() -> RedisRunQueue:
        clients.append(redis.from_url(request.getfixturevalue("redis_server").url))
        return RedisRunQueue(clients[-1], prefix=prefix)

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
def queue(make_queue):
    return make_queue()


def entry(run_id: str, project: str = "a", priority: int = 0, **kwargs) -> QueuedRun:
    request = AgentRequest.create(
        project, f"prompt of {run_id}", providers=["claude-code"], priority=priority
    )
    return QueuedRun(
        run_id, f"stream-{run_id}", request, kwargs.get("at", T0), kwargs.get("deadline")
    )


async def take_all(queue, busy=()) -> list[str]:
    taken = []
    while (item := await queue.take(busy)) is not None:
        taken.append(item.run_id)
    return taken


async def test_an_entry_comes_back_whole(queue):
    original = QueuedRun(
        "r1",
        "s1",
        AgentRequest.create(
            "demo",
            'say ✓ "quoted"\n',
            providers=["opencode", "claude-code"],
            session_id="sess",
            model="m",
            timeout_s=60,
            metadata={"ci": "1"},
            priority=5,
            queue_timeout_s=30,
        ),
        T0,
        T0 + timedelta(seconds=30),
    )
    assert await queue.push(original, 10) == 1
    assert await queue.take(()) == original
    assert await queue.take(()) is None


async def test_fifo_within_a_project_and_positions(queue):
    for i in range(5):
        assert await queue.push(entry(f"r{i}"), 100) == i + 1
    assert await queue.count() == 5
    assert [w.run_id for w in await queue.listing()] == [f"r{i}" for i in range(5)]
    assert await take_all(queue) == [f"r{i}" for i in range(5)]


async def test_projects_take_turns(queue):
    for i in range(6):
        await queue.push(entry(f"a{i}", "a"), 100)
    await queue.push(entry("b0", "b"), 100)  # behind six of a's, but next in turn
    for i in range(2):
        await queue.push(entry(f"c{i}", "c"), 100)
    assert await take_all(queue) == ["a0", "b0", "c0", "a1", "c1", "a2", "a3", "a4", "a5"]


async def test_a_late_project_waits_at_most_one_start_behind_a_busy_one(queue):
    for i in range(1000):
        await queue.push(entry(f"a{i}", "a"), 10_000)
    for _ in range(10):  # a's runs are being served
        await queue.take(())
    # The newcomer joins the round being served, which a has had its turn in: b goes next.
    assert await queue.push(entry("b0", "b"), 10_000) == 1
    assert [(await queue.take(())).run_id for _ in range(2)] == ["b0", "a10"]


async def test_a_project_that_keeps_coming_back_takes_its_turn_not_more(queue):
    for i in range(4):
        await queue.push(entry(f"a{i}", "a"), 100)
    taken = []
    for i in range(4):  # b pushes one run whenever the last was taken
        await queue.push(entry(f"b{i}", "b"), 100)
        taken.append((await queue.take(())).run_id)
        taken.append((await queue.take(())).run_id)
    assert taken == ["a0", "b0", "a1", "b1", "a2", "b2", "a3", "b3"]


async def test_higher_priority_first(queue):
    await queue.push(entry("low", "a", priority=-5), 100)
    await queue.push(entry("normal", "a"), 100)
    await queue.push(entry("urgent", "b", priority=100), 100)
    assert await queue.push(entry("high", "c", priority=10), 100) == 2
    assert [w.priority for w in await queue.listing()] == [100, 10, 0, -5]
    assert await take_all(queue) == ["urgent", "high", "normal", "low"]


async def test_busy_projects_are_skipped_not_lost(queue):
    await queue.push(entry("a0", "a"), 100)
    await queue.push(entry("a1", "a"), 100)
    await queue.push(entry("b0", "b"), 100)
    assert (await queue.take({"a"})).run_id == "b0"
    assert await queue.take({"a"}) is None
    assert await take_all(queue) == ["a0", "a1"]


async def test_full_queue_refuses(queue):
    await queue.push(entry("r1"), 2)
    await queue.push(entry("r2"), 2)
    with pytest.raises(QueueFull):
        await queue.push(entry("r3"), 2)
    assert await queue.count() == 2


async def test_remove_while_queued(queue):
    for i in range(3):
        await queue.push(entry(f"r{i}"), 100)
    removed = await queue.remove("r1")
    assert removed is not None and removed.run_id == "r1"
    assert await queue.remove("r1") is None
    assert await queue.remove("never") is None
    assert [w.run_id for w in await queue.listing()] == ["r0", "r2"]
    assert await take_all(queue) == ["r0", "r2"]


async def test_expired_lists_entries_past_their_deadline(queue):
    await queue.push(entry("soon", deadline=T0 + timedelta(seconds=5)), 100)
    await queue.push(entry("later", deadline=T0 + timedelta(seconds=50)), 100)
    await queue.push(entry("never"), 100)
    assert await queue.expired(T0) == []
    assert await queue.expired(T0 + timedelta(seconds=10)) == ["soon"]
    await queue.remove("soon")
    assert await queue.expired(T0 + timedelta(seconds=10)) == []


async def test_listing_shows_project_priority_and_queued_at(queue):
    at = datetime(2026, 5, 1, 12, 0, 0, 125000, tzinfo=UTC)
    await queue.push(entry("r1", "demo", priority=3, at=at), 100)
    (waiting,) = await queue.listing()
    assert (waiting.run_id, waiting.project_id, waiting.priority) == ("r1", "demo", 3)
    assert waiting.queued_at == at


async def test_a_push_wakes_a_waiting_replica(make_queue):
    waiting, pushing = make_queue(), make_queue()
    await waiting.wait_for_push(timeout_s=0.05)  # subscribes, nothing pushed yet
    started = time.monotonic()
    wake = asyncio.create_task(waiting.wait_for_push(timeout_s=10))
    await asyncio.sleep(0.05)
    await pushing.push(entry("r1"), 10)
    await asyncio.wait_for(wake, 5)
    assert time.monotonic() - started < 5


async def test_each_entry_is_taken_exactly_once_by_competing_replicas(make_queue):
    first, second = make_queue(), make_queue()
    for i in range(200):
        await first.push(entry(f"r{i}", f"p{i % 7}"), 1000)

    async def consume(queue) -> list[str]:
        taken = []
        while (item := await queue.take(())) is not None:
            taken.append(item.run_id)
            await asyncio.sleep(0)
        return taken

    got = await asyncio.gather(consume(first), consume(second), consume(first))
    every = [run_id for taken in got for run_id in taken]
    assert sorted(every) == sorted(f"r{i}" for i in range(200))
    assert len(set(every)) == 200

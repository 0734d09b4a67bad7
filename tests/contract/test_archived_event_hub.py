"""The archived hub: a live hub (memory or Redis) plus the PostgreSQL event archive.
Streams keep every event and its id past the live hub's retention and across restarts."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as redis

from adapters.memory import MemoryEventHub
from adapters.postgres import PostgresBackend
from adapters.redis_store import RedisEventHub
from domain.archived_hub import ArchivedEventHub
from domain.errors import StreamNotFound
from domain.model import DoneEvent, GapEvent, Outcome, OutputEvent, OutputType, RunStatus

DONE = DoneEvent(RunStatus.SUCCEEDED, Outcome(exit_code=0, result="ok"), 5, "fake", None)


def text(i: int) -> OutputEvent:
    return OutputEvent(OutputType.TEXT, f"delta {i} \u0000 \ud800", raw={"i": i})


@pytest.fixture(params=["memory", "redis"])
async def replica(request, database_url):
    """Makes a replica's hub: a live hub with a small retention, over one database. Each
    call is a fresh process's view (a restarted gateway): a new live hub (memory) or the
    same Redis, and a new backend."""
    backends, clients = [], []
    prefix = f"t{uuid.uuid4().hex}"

    async def make(retain_events: int = 50) -> ArchivedEventHub:
        backend = PostgresBackend(database_url, history_days=30)
        await backend.start()
        backends.append(backend)
        if request.param == "memory":
            live = MemoryEventHub(retain_events=retain_events, max_pending=retain_events)
        else:
            clients.append(redis.from_url(request.getfixturevalue("redis_server").url))
            live = RedisEventHub(clients[-1], retain_events=retain_events, prefix=prefix)
        return ArchivedEventHub(live, backend.archive)

    yield make
    for backend in backends:
        await backend.close()
    for client in clients:
        await client.aclose()


async def everything(hub, stream_id, after_seq=0):
    seen = []
    async for batch in hub.subscribe(stream_id, after_seq):
        seen += batch
    return seen


async def test_events_past_live_retention_come_from_the_archive_with_their_ids(replica):
    hub = await replica()
    await hub.create("s")
    for i in range(2000):
        await hub.publish("s", text(i))
    await hub.publish("s", DONE)
    await hub.close("s")
    seen = await everything(hub, "s")
    assert [item.seq for item in seen] == list(range(1, 2002))
    assert not [item for item in seen if isinstance(item.event, GapEvent)]
    assert seen[7].event == text(7) and seen[-1].event == DONE
    resumed = await everything(hub, "s", after_seq=1500)
    assert [item.seq for item in resumed] == list(range(1501, 2002))


async def test_a_finished_stream_replays_the_same_after_a_restart(replica):
    first = await replica()
    await first.create("s")
    for i in range(120):
        await first.publish("s", text(i))
    await first.publish("s", DONE)
    await first.close("s")
    before = await everything(first, "s")
    await first._archive.flush()  # what a clean shutdown does; a crash may lose the last
    restarted = await replica()
    assert await everything(restarted, "s") == before
    assert await everything(restarted, "s", after_seq=100) == before[100:]


async def test_an_unfinished_stream_continues_after_a_restart_with_the_next_ids(replica):
    first = await replica()
    await first.create("s")
    for i in range(3):
        await first.publish("s", text(i))
    await first._archive.flush()
    restarted = await replica()
    follower = asyncio.create_task(everything(restarted, "s"))
    await asyncio.sleep(0.2)  # it has the archived events already, and waits for more
    await restarted.create("s")
    assert await restarted.publish("s", text(3)) == 4
    await restarted.publish("s", DONE)
    await restarted.close("s")
    seen = await asyncio.wait_for(follower, 10)
    assert [item.seq for item in seen] == [1, 2, 3, 4, 5]
    assert [item.event for item in seen[:4]] == [text(i) for i in range(4)]


async def test_a_done_published_to_a_stream_unknown_to_the_live_hub_continues_it(replica):
    first = await replica()
    await first.create("s")
    await first.publish("s", text(0))
    await first._archive.flush()
    restarted = await replica()  # an orphan's `done`, published by the next replica
    assert await restarted.publish("s", DONE) == 2
    await restarted.close("s")
    seen = await everything(restarted, "s")
    assert [item.event for item in seen] == [text(0), DONE]


async def test_unknown_streams_are_not_found(replica):
    hub = await replica()
    assert not await hub.exists("nope")
    with pytest.raises(StreamNotFound):
        await everything(hub, "nope")

"""Replicas on one PostgreSQL: with Redis for the live fan-out, or PostgreSQL alone."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter

import httpx
import redis.asyncio as redis

from adapters.postgres import PostgresBackend
from adapters.redis_store import RedisEventHub
from domain.archived_hub import ArchivedEventHub
from domain.model import AgentRequest, OutputEvent, OutputType, RunStatus
from domain.registry import ProviderRegistry
from domain.runs import RunLimits, RunService, Storage
from tests.fakes.agents import FakeCodeAgent
from tests.integration.helpers import GatewayProcess, read_stream, serve_flags, start_run


def text(i: int) -> OutputEvent:
    return OutputEvent(OutputType.TEXT, f"t{i}")


async def collect(batches) -> list:
    seen = []
    async for batch in batches:
        seen += batch
    return seen


async def until_done(service: RunService, run) -> None:
    async for _ in await service.open_stream(run.project_id, run.stream_id):
        pass


async def test_two_replicas_start_each_of_200_queued_runs_exactly_once(database_url, redis_server):
    prefix = f"t{uuid.uuid4().hex}"
    opened: list = []

    async def replica(max_runs: int) -> tuple[RunService, FakeCodeAgent]:
        backend = PostgresBackend(database_url, history_days=30)
        await backend.start()
        client = redis.from_url(redis_server.url)
        opened.append((backend, client))
        hub = ArchivedEventHub(RedisEventHub(client, prefix=prefix), backend.archive)
        agent = FakeCodeAgent(texts=("done",))
        registry = ProviderRegistry()
        registry.register("fake", agent)
        storage = Storage(hub, backend.store, backend.control, backend.queue)
        service = RunService(registry, storage, limits=RunLimits(max_runs=max_runs))
        return service, agent

    front, _ = await replica(max_runs=0)  # takes requests, runs nothing: all of them queue
    workers = [await replica(max_runs=4) for _ in range(2)]
    runs = [await front.start(AgentRequest.create(f"p{i % 5}", f"run {i}")) for i in range(200)]
    assert {run.status for run in runs} == {RunStatus.QUEUED}
    serving = [asyncio.create_task(service.serve_control()) for service, _ in workers]
    try:
        async with asyncio.timeout(180):  # every stream to its `done`, read on the front
            for run in runs:
                await until_done(front, run)
        assert await front.queue() == []
        started = Counter(request.prompt for _, agent in workers for request in agent.started)
        assert sorted(started) == sorted(f"run {i}" for i in range(200))
        assert set(started.values()) == {1}  # none twice
        assert all(len(agent.started) >= 20 for _, agent in workers)  # both took work
        for run in runs:
            record = await front.get(run.project_id, run.run_id)
            assert record.status is RunStatus.SUCCEEDED
    finally:
        for task in serving:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for backend, client in opened:
            await backend.close()
            await client.aclose()


async def test_on_postgresql_alone_a_stream_published_by_two_replicas_is_followed_on_either(
    database_url,
):
    replicas = [PostgresBackend(database_url, history_days=30) for _ in range(2)]
    for backend in replicas:
        await backend.start()
    first, second = (backend.hub for backend in replicas)
    try:
        await first.create("s")
        follower = asyncio.create_task(collect(second.subscribe("s")))
        assert [await first.publish("s", text(i)) for i in range(3)] == [1, 2, 3]
        # the run moves on to another replica (it was queued on the first): numbering goes on
        assert [await second.publish("s", text(i)) for i in range(3, 6)] == [4, 5, 6]
        await second.close("s")
        seen = await asyncio.wait_for(follower, 10)
        assert [(item.seq, item.event) for item in seen] == [(i + 1, text(i)) for i in range(6)]
        assert await collect(first.subscribe("s", 4)) == seen[4:]
    finally:
        for backend in replicas:
            await backend.close()


def test_two_gateways_on_postgresql_alone_share_queue_streams_and_cancels(database_url, tmp_path):
    flags = serve_flags(
        tmp_path,
        "--database-url",
        database_url,
        "--event-backend",
        "postgres",
        "--max-runs",
        "1",
        "--lease-ttl-s",
        "1.5",
    )
    a, b = GatewayProcess(*flags), GatewayProcess(*flags)
    try:
        holder = start_run(a.url, prompt="slow hold")
        moved = start_run(a.url, prompt="lines 5")  # a is full: queued, and b takes it
        assert (holder["status"], moved["status"]) == ("running", "queued")
        events = read_stream(a.url, moved["stream_url"])  # published by both, read on a
        statuses = [data["status"] for _, name, data in events if name == "status"]
        assert statuses == ["queued", "running"]
        assert events[-1][1] == "done" and events[-1][2]["status"] == "succeeded"
        assert [seq for seq, _, _ in events] == list(range(1, len(events) + 1))
        assert read_stream(b.url, moved["stream_url"]) == events
        cancelled = httpx.post(f"{b.url}{holder['cancel_url']}", timeout=30)  # a owns it
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        on_b = read_stream(b.url, holder["stream_url"])
        assert on_b[-1][2]["status"] == "cancelled" and on_b == read_stream(
            a.url, holder["stream_url"]
        )
    finally:
        a.stop()
        b.stop()

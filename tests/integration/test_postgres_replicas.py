"""Replicas on one PostgreSQL (and one Redis for the live fan-out): the run service of
each, in one process, with fake agents, so that hundreds of runs cost no processes."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter

import redis.asyncio as redis

from adapters.postgres import PostgresBackend
from adapters.redis_store import RedisEventHub
from domain.archived_hub import ArchivedEventHub
from domain.model import AgentRequest, RunStatus
from domain.registry import ProviderRegistry
from domain.runs import RunLimits, RunService, Storage
from tests.fakes.agents import FakeCodeAgent


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

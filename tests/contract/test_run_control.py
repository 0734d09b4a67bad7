"""One suite for the run controls of several replicas: Redis and PostgreSQL (the memory
one has no other replicas)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as redis

from adapters.postgres import PostgresBackend
from adapters.redis_store import RedisRunControl
from domain.model import Close, InputAnswer, UserMessage


@pytest.fixture(params=["redis", "postgres"])
async def replicas(request):
    """The run controls of two replicas of one deployment."""
    if request.param == "redis":
        client = redis.from_url(request.getfixturevalue("redis_server").url)
        prefix = f"t{uuid.uuid4().hex}"
        yield RedisRunControl(client, prefix), RedisRunControl(client, prefix)
        await client.aclose()
        return
    url = request.getfixturevalue("database_url")
    backends = [PostgresBackend(url, history_days=30) for _ in range(2)]
    for backend in backends:
        await backend.start()
    yield backends[0].control, backends[1].control
    for backend in backends:
        await backend.close()


async def test_only_runs_whose_lease_expired_are_orphans_and_each_is_taken_once(replicas):
    control, other = replicas
    for run_id in ("dead", "renewed", "released"):
        await control.claim(run_id, ttl_s=0.3)
    await control.release("released")
    await asyncio.sleep(0.2)
    await control.renew(["renewed"], ttl_s=5)
    await asyncio.sleep(0.2)
    taken = await asyncio.gather(control.take_orphans(), other.take_orphans())
    assert sorted(taken[0] + taken[1]) == ["dead"]
    assert await control.take_orphans() == []


async def test_cancel_requests_and_inputs_reach_every_listening_replica(replicas):
    control, other = replicas
    cancels: list[str] = []
    inputs: list[tuple] = []

    async def on_cancel(run_id: str) -> None:
        cancels.append(run_id)

    async def on_input(run_id: str, agent_input, by) -> None:
        inputs.append((run_id, agent_input, by))

    listener = asyncio.ensure_future(other.serve(on_cancel, on_input))
    long_message = UserMessage("x" * 20_000, now=True)  # more than a NOTIFY payload holds
    answer = InputAnswer("req-1", True, None, {"command": "ls"}, {"Which?": "blue"})
    try:
        async with asyncio.timeout(10):  # subscribed: a cancel sent now arrives
            while "probe" not in cancels:
                await control.request_cancel("probe")
                await asyncio.sleep(0.2)
        await control.request_cancel("run-1")
        await control.request_input("run-2", answer, "ci")
        await control.request_input("run-2", long_message, None)
        await control.request_input("run-2", Close(), "ops")
        async with asyncio.timeout(10):
            while len(inputs) < 3:  # noqa: ASYNC110 (the handler is what we test)
                await asyncio.sleep(0.02)
        assert [c for c in cancels if c != "probe"] == ["run-1"]
        assert inputs == [
            ("run-2", answer, "ci"),
            ("run-2", long_message, None),
            ("run-2", Close(), "ops"),
        ]
    finally:
        listener.cancel()

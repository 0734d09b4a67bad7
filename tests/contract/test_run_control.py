"""Leases and orphans of the Redis run control (the memory one has no other replicas)."""

from __future__ import annotations

import asyncio
import uuid

import redis.asyncio as redis

from adapters.redis_store import RedisRunControl


async def test_only_runs_whose_lease_expired_are_orphans_and_each_is_taken_once(redis_server):
    client = redis.from_url(redis_server.url)
    prefix = f"t{uuid.uuid4().hex}"
    control, other = RedisRunControl(client, prefix), RedisRunControl(client, prefix)
    try:
        for run_id in ("dead", "renewed", "released"):
            await control.claim(run_id, ttl_s=0.3)
        await control.release("released")
        await asyncio.sleep(0.2)
        await control.renew(["renewed"], ttl_s=5)
        await asyncio.sleep(0.2)
        taken = await asyncio.gather(control.take_orphans(), other.take_orphans())
        assert sorted(taken[0] + taken[1]) == ["dead"]
        assert await control.take_orphans() == []
    finally:
        await client.aclose()


async def test_cancel_requests_reach_every_listening_replica(redis_server):
    client = redis.from_url(redis_server.url)
    control = RedisRunControl(client, prefix=f"t{uuid.uuid4().hex}")
    received: list[str] = []

    async def on_cancel(run_id: str) -> None:
        received.append(run_id)

    listener = asyncio.ensure_future(control.serve(on_cancel))
    try:
        await asyncio.sleep(0.2)  # subscribed
        await control.request_cancel("run-1")
        for _ in range(50):
            if received:
                break
            await asyncio.sleep(0.02)
        assert received == ["run-1"]
    finally:
        listener.cancel()
        await client.aclose()

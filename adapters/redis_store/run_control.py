"""Cross-replica run control over Redis pub/sub."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as redis
from redis.exceptions import RedisError

from adapters.redis_store.errors import translated
from adapters.stored_json import decode_input, encode_input
from domain.model import AgentInput
from ports.run_control import InputHandler

log = logging.getLogger(__name__)


class RedisRunControl:
    """Cancel requests are published on one channel; every replica listens and acts on
    the runs it owns. A lost connection is re-established after a short pause."""

    def __init__(self, client: redis.Redis, prefix: str = "agw") -> None:
        self._redis = client
        self._prefix = prefix
        self._channel = f"{prefix}:control"
        self._running = f"{prefix}:running"  # the set of claimed runs

    @translated
    async def request_cancel(self, run_id: str) -> None:
        await self._redis.publish(self._channel, f"cancel {run_id}")

    @translated
    async def request_input(self, run_id: str, agent_input: AgentInput, by: str | None) -> None:
        payload = encode_input(agent_input, by).decode()
        await self._redis.publish(self._channel, f"input {run_id} {payload}")

    async def serve(
        self, on_cancel: Callable[[str], Awaitable[None]], on_input: InputHandler
    ) -> None:
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        command, _, rest = message["data"].decode().partition(" ")
                        if command == "cancel":
                            await on_cancel(rest)  # only asks the run to stop: quick
                        elif command == "input":
                            run_id, _, payload = rest.partition(" ")
                            await on_input(run_id, *decode_input(payload))
            except (RedisError, OSError) as exc:
                log.warning("run control channel lost (%s); reconnecting", exc)
                await asyncio.sleep(1)

    def _lease(self, run_id: str) -> str:
        return f"{self._prefix}:lease:{run_id}"

    @translated
    async def claim(self, run_id: str, ttl_s: float) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.sadd(self._running, run_id)
            pipe.set(self._lease(run_id), "1", px=int(ttl_s * 1000))
            await pipe.execute()

    @translated
    async def renew(self, run_ids: list[str], ttl_s: float) -> None:
        if run_ids:
            async with self._redis.pipeline(transaction=False) as pipe:
                for run_id in run_ids:
                    pipe.set(self._lease(run_id), "1", px=int(ttl_s * 1000))
                await pipe.execute()

    @translated
    async def release(self, run_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.srem(self._running, run_id)
            pipe.delete(self._lease(run_id))
            await pipe.execute()

    @translated
    async def take_orphans(self) -> list[str]:
        claimed = [m.decode() for m in await self._redis.smembers(self._running)]
        if not claimed:
            return []
        alive = await self._redis.mget([self._lease(run_id) for run_id in claimed])
        orphans = []
        for run_id, lease in zip(claimed, alive, strict=True):
            # SREM answers 1 to one replica only: that one finishes the run.
            if lease is None and await self._redis.srem(self._running, run_id):
                orphans.append(run_id)
        return orphans

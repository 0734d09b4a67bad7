"""Cross-replica run control over Redis pub/sub."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class RedisRunControl:
    """Cancel requests are published on one channel; every replica listens and acts on
    the runs it owns. A lost connection is re-established after a short pause."""

    def __init__(self, client: redis.Redis, prefix: str = "agw") -> None:
        self._redis = client
        self._channel = f"{prefix}:control"

    async def request_cancel(self, run_id: str) -> None:
        await self._redis.publish(self._channel, f"cancel {run_id}")

    async def serve(self, on_cancel: Callable[[str], Awaitable[None]]) -> None:
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        command, _, run_id = message["data"].decode().partition(" ")
                        if command == "cancel":
                            await on_cancel(run_id)  # only asks the run to stop: quick
            except (RedisError, OSError) as exc:
                log.warning("run control channel lost (%s); reconnecting", exc)
                await asyncio.sleep(1)

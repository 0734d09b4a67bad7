"""Webhook deliveries in Redis: a record per delivery, one sorted set of the pending ones
by the time of their next attempt (claimed by a script that pushes them a lease ahead),
one per project by creation."""

from __future__ import annotations

from datetime import datetime

import redis.asyncio as redis

from adapters.redis_store.errors import translated
from adapters.stored_json import decode_delivery, encode_delivery
from domain.webhooks import Delivery

# KEYS: the due set; ARGV: now, lease ends, limit. Returns the claimed ids.
CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], id) end
return ids
"""
KEEP_S = 30 * 86400  # finished deliveries are listed this long


class RedisWebhookOutbox:
    def __init__(self, client: redis.Redis, prefix: str = "agw") -> None:
        self._redis = client
        # One hash tag for every key: the transactions touch several (Redis Cluster).
        self._prefix = f"{{{prefix}-webhooks}}"
        self._due = f"{self._prefix}:due"
        self._claim = client.register_script(CLAIM)

    def _key(self, delivery_id: str) -> str:
        return f"{self._prefix}:delivery:{delivery_id}"

    @translated
    async def add(self, delivery: Delivery) -> None:
        index = f"{self._prefix}:project:{delivery.project_id}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key(delivery.delivery_id), encode_delivery(delivery), ex=KEEP_S)
            pipe.zadd(self._due, {delivery.delivery_id: delivery.next_attempt_at.timestamp()})
            pipe.zadd(index, {delivery.delivery_id: delivery.created_at.timestamp()})
            pipe.zremrangebyrank(index, 0, -10_001)
            pipe.expire(index, KEEP_S)
            await pipe.execute()

    @translated
    async def claim_due(self, now: datetime, lease_s: float, limit: int) -> list[Delivery]:
        ids = await self._claim(
            keys=[self._due], args=[now.timestamp(), now.timestamp() + lease_s, limit]
        )
        if not ids:
            return []
        records = await self._redis.mget([self._key(i.decode()) for i in ids])
        return [decode_delivery(r) for r in records if r]

    @translated
    async def save(self, delivery: Delivery) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key(delivery.delivery_id), encode_delivery(delivery), ex=KEEP_S)
            if delivery.status == "pending":
                pipe.zadd(self._due, {delivery.delivery_id: delivery.next_attempt_at.timestamp()})
            else:
                pipe.zrem(self._due, delivery.delivery_id)
            await pipe.execute()

    @translated
    async def list_for_project(self, project_id: str, limit: int) -> list[Delivery]:
        index = f"{self._prefix}:project:{project_id}"
        ids = await self._redis.zrevrange(index, 0, limit - 1)
        if not ids:
            return []
        records = await self._redis.mget([self._key(i.decode()) for i in ids])
        return [decode_delivery(r) for r in records if r]

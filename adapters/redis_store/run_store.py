"""Run records and sessions in Redis, listable per project newest first."""

from __future__ import annotations

import redis.asyncio as redis

from adapters.redis_store.errors import translated
from adapters.stored_json import decode_run, decode_session, encode_run, encode_session
from domain.model import Run, Session


class RedisRunStore:
    """RunStore in Redis: a run is a JSON string, a project's runs a sorted set scored by
    creation time. Finished records expire after `record_ttl_s`."""

    def __init__(
        self,
        client: redis.Redis,
        record_ttl_s: float = 30 * 86400.0,
        max_runs_per_project: int = 1000,
        prefix: str = "agw",
    ) -> None:
        self._redis = client
        self._ttl = int(record_ttl_s)
        self._max_runs = max_runs_per_project
        self._prefix = prefix

    @translated
    async def save(self, run: Run) -> None:
        p = self._prefix
        index = f"{p}:project:{run.project_id}:runs"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(f"{p}:run:{run.run_id}", encode_run(run), ex=self._ttl)
            pipe.set(f"{p}:stream-run:{run.stream_id}", run.run_id, ex=self._ttl)
            pipe.zadd(index, {run.run_id: run.created_at.timestamp()}, nx=True)
            pipe.zremrangebyrank(index, 0, -self._max_runs - 1)
            pipe.expire(index, self._ttl)
            await pipe.execute()

    @translated
    async def get(self, run_id: str) -> Run | None:
        text = await self._redis.get(f"{self._prefix}:run:{run_id}")
        return decode_run(text) if text else None

    @translated
    async def find_by_stream(self, stream_id: str) -> Run | None:
        run_id = await self._redis.get(f"{self._prefix}:stream-run:{stream_id}")
        return await self.get(run_id.decode()) if run_id else None

    @translated
    async def list_for_project(self, project_id: str, limit: int = 100) -> list[Run]:
        index = f"{self._prefix}:project:{project_id}:runs"
        run_ids = await self._redis.zrevrange(index, 0, limit - 1)
        if not run_ids:
            return []
        texts = await self._redis.mget([f"{self._prefix}:run:{r.decode()}" for r in run_ids])
        return [decode_run(text) for text in texts if text]

    @translated
    async def save_session(self, session: Session) -> None:
        key = f"{self._prefix}:session:{session.session_id}"
        await self._redis.set(key, encode_session(session), ex=self._ttl)

    @translated
    async def get_session(self, session_id: str) -> Session | None:
        text = await self._redis.get(f"{self._prefix}:session:{session_id}")
        return decode_session(text) if text else None

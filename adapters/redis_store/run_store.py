"""Run records and sessions in Redis, listable newest first (per project or in all)."""

from __future__ import annotations

from collections.abc import Collection

import redis.asyncio as redis

from adapters.redis_store.errors import translated
from adapters.stored_json import decode_run, decode_session, encode_run, encode_session
from domain.model import Run, RunStatus, Session

PAGE = 200  # records read at a time while looking for runs of one status
MAX_SCANNED = 5000  # per index: a listing by status looks no further back than this


class RedisRunStore:
    """RunStore in Redis: a run is a JSON string; a project's runs, and all runs, are
    sorted sets scored by creation time. Finished records expire after `record_ttl_s`."""

    def __init__(
        self,
        client: redis.Redis,
        record_ttl_s: float = 30 * 86400.0,
        max_runs_per_project: int = 1000,
        max_runs: int = 50_000,
        prefix: str = "agw",
    ) -> None:
        self._redis = client
        self._ttl = int(record_ttl_s)
        self._max_runs_per_project = max_runs_per_project
        self._max_runs = max_runs
        self._prefix = prefix

    def _index(self, project_id: str | None) -> str:
        if project_id is None:
            return f"{self._prefix}:runs"
        return f"{self._prefix}:project:{project_id}:runs"

    @translated
    async def save(self, run: Run) -> None:
        p = self._prefix
        score = {run.run_id: run.created_at.timestamp()}
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(f"{p}:run:{run.run_id}", encode_run(run), ex=self._ttl)
            pipe.set(f"{p}:stream-run:{run.stream_id}", run.run_id, ex=self._ttl)
            for index, size in (
                (self._index(run.project_id), self._max_runs_per_project),
                (self._index(None), self._max_runs),
            ):
                pipe.zadd(index, score, nx=True)
                pipe.zremrangebyrank(index, 0, -size - 1)
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
    async def list_recent(
        self,
        projects: Collection[str] | None,
        status: RunStatus | None = None,
        limit: int = 100,
    ) -> list[Run]:
        found = []
        for project_id in [None] if projects is None else sorted(projects):
            found += await self._scan(self._index(project_id), status, limit)
        found.sort(key=lambda run: run.created_at, reverse=True)
        return found[:limit]

    async def _scan(self, index: str, status: RunStatus | None, limit: int) -> list[Run]:
        """The newest `limit` runs of the index (of `status`), read a page at a time."""
        found: list[Run] = []
        start = 0
        while len(found) < limit and start < MAX_SCANNED:
            count = limit if status is None else PAGE
            run_ids = await self._redis.zrevrange(index, start, start + count - 1)
            if not run_ids:
                break
            texts = await self._redis.mget([f"{self._prefix}:run:{r.decode()}" for r in run_ids])
            runs = [decode_run(text) for text in texts if text]
            found += [run for run in runs if status in (None, run.status)]
            start += count
        return found[:limit]

    @translated
    async def save_session(self, session: Session) -> None:
        key = f"{self._prefix}:session:{session.session_id}"
        await self._redis.set(key, encode_session(session), ex=self._ttl)

    @translated
    async def get_session(self, session_id: str) -> Session | None:
        text = await self._redis.get(f"{self._prefix}:session:{session_id}")
        return decode_session(text) if text else None

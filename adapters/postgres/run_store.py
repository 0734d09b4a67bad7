"""Run records and sessions in PostgreSQL, kept for the history's days."""

from __future__ import annotations

from collections.abc import Collection

from psycopg_pool import AsyncConnectionPool

from adapters.postgres.errors import translated
from adapters.stored_json import decode_run, decode_session, encode_run, encode_session
from domain.model import Run, RunStatus, Session


class PostgresRunStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    @property
    def pool(self) -> AsyncConnectionPool:
        """The database's pool, for the other stores of the same database."""
        return self._pool

    @translated
    async def save(self, run: Run) -> None:
        async with self._pool.connection() as connection:
            await connection.execute(
                "INSERT INTO runs (run_id, project_id, stream_id, created_at, status, record)"
                " VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (run_id) DO UPDATE"
                " SET record = excluded.record, status = excluded.status, updated_at = now()",
                (
                    run.run_id,
                    run.project_id,
                    run.stream_id,
                    run.created_at,
                    run.status.value,
                    encode_run(run),
                ),
            )

    @translated
    async def get(self, run_id: str) -> Run | None:
        return await self._one("SELECT record FROM runs WHERE run_id = %s", run_id)

    @translated
    async def find_by_stream(self, stream_id: str) -> Run | None:
        return await self._one("SELECT record FROM runs WHERE stream_id = %s", stream_id)

    async def _one(self, query: str, key: str) -> Run | None:
        async with self._pool.connection() as connection:
            row = await (await connection.execute(query, (key,))).fetchone()
        return decode_run(row[0]) if row else None

    @translated
    async def list_recent(
        self,
        projects: Collection[str] | None,
        status: RunStatus | None = None,
        limit: int = 100,
    ) -> list[Run]:
        async with self._pool.connection() as connection:
            cursor = await connection.execute(
                "SELECT record FROM runs"
                " WHERE (%(projects)s::text[] IS NULL OR project_id = ANY(%(projects)s))"
                " AND (%(status)s::text IS NULL OR status = %(status)s)"
                " ORDER BY created_at DESC LIMIT %(limit)s",
                {
                    "projects": None if projects is None else list(projects),
                    "status": None if status is None else status.value,
                    "limit": limit,
                },
            )
            return [decode_run(record) for (record,) in await cursor.fetchall()]

    @translated
    async def save_session(self, session: Session) -> None:
        async with self._pool.connection() as connection:
            await connection.execute(
                "INSERT INTO sessions (session_id, project_id, record) VALUES (%s, %s, %s)"
                " ON CONFLICT (session_id) DO UPDATE"
                " SET record = excluded.record, updated_at = now()",
                (session.session_id, session.project_id, encode_session(session)),
            )

    @translated
    async def get_session(self, session_id: str) -> Session | None:
        async with self._pool.connection() as connection:
            cursor = await connection.execute(
                "SELECT record FROM sessions WHERE session_id = %s", (session_id,)
            )
            row = await cursor.fetchone()
        return decode_session(row[0]) if row else None

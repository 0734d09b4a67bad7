"""Sealed credentials in PostgreSQL (migration 4)."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from adapters.postgres.errors import translated
from domain.credentials import SealedCredential

_COLUMNS = "project_id, name, env, sealed, fingerprint, created_at, updated_at"


class PostgresCredentialStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    @translated
    async def put(self, credential: SealedCredential) -> None:
        c = credential
        async with self._pool.connection() as connection:
            await connection.execute(
                f"INSERT INTO credentials ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (project_id, name) DO UPDATE SET env = excluded.env,"
                " sealed = excluded.sealed, fingerprint = excluded.fingerprint,"
                " updated_at = excluded.updated_at",
                (c.project_id, c.name, c.env, c.sealed, c.fingerprint, c.created_at, c.updated_at),
            )

    @translated
    async def list_for_project(self, project_id: str) -> list[SealedCredential]:
        return await self._select("WHERE project_id = %s ORDER BY name", (project_id,))

    @translated
    async def delete(self, project_id: str, name: str) -> bool:
        async with self._pool.connection() as connection:
            cursor = await connection.execute(
                "DELETE FROM credentials WHERE project_id = %s AND name = %s", (project_id, name)
            )
            return cursor.rowcount > 0

    @translated
    async def list_all(self) -> list[SealedCredential]:
        return await self._select("ORDER BY project_id, name", ())

    async def _select(self, where: str, args: tuple[str, ...]) -> list[SealedCredential]:
        async with self._pool.connection() as connection:
            cursor = await connection.execute(f"SELECT {_COLUMNS} FROM credentials {where}", args)
            rows = await cursor.fetchall()
        return [
            SealedCredential(project, name, env, bytes(sealed), fingerprint, created, updated)
            for project, name, env, sealed, fingerprint, created, updated in rows
        ]

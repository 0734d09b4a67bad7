"""Cross-replica run control over PostgreSQL: cancel requests by NOTIFY, leases in a table
stamped by the database's clock (one clock for every replica)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from psycopg_pool import AsyncConnectionPool

from adapters.postgres.errors import translated
from adapters.postgres.listener import Listener

CHANNEL = "agw_control"


class PostgresRunControl:
    def __init__(self, pool: AsyncConnectionPool, url: str) -> None:
        self._pool = pool
        self._url = url

    @translated
    async def request_cancel(self, run_id: str) -> None:
        async with self._pool.connection() as connection:
            await connection.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"cancel {run_id}"))

    async def serve(self, on_cancel: Callable[[str], Awaitable[None]]) -> None:
        listener = Listener(self._url, CHANNEL)
        try:
            while True:
                payload = await listener.next(timeout_s=30)
                command, _, run_id = (payload or "").partition(" ")
                if command == "cancel":
                    await on_cancel(run_id)  # only asks the run to stop: quick
        finally:
            await listener.close()

    @translated
    async def claim(self, run_id: str, ttl_s: float) -> None:
        async with self._pool.connection() as connection:
            await connection.execute(
                "INSERT INTO leases (run_id, expires_at)"
                " VALUES (%s, now() + make_interval(secs => %s))"
                " ON CONFLICT (run_id) DO UPDATE SET expires_at = excluded.expires_at",
                (run_id, ttl_s),
            )

    @translated
    async def renew(self, run_ids: list[str], ttl_s: float) -> None:
        if run_ids:
            async with self._pool.connection() as connection:
                await connection.execute(
                    "UPDATE leases SET expires_at = now() + make_interval(secs => %s)"
                    " WHERE run_id = ANY(%s)",
                    (ttl_s, run_ids),
                )

    @translated
    async def release(self, run_id: str) -> None:
        async with self._pool.connection() as connection:
            await connection.execute("DELETE FROM leases WHERE run_id = %s", (run_id,))

    @translated
    async def take_orphans(self) -> list[str]:
        # DELETE ... RETURNING hands each expired lease to one caller only.
        async with self._pool.connection() as connection:
            cursor = await connection.execute(
                "DELETE FROM leases WHERE expires_at < now() RETURNING run_id"
            )
            return [run_id for (run_id,) in await cursor.fetchall()]

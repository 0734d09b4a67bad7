"""Cross-replica run control over PostgreSQL: cancel requests by NOTIFY, leases in a table
stamped by the database's clock (one clock for every replica)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from psycopg_pool import AsyncConnectionPool

from adapters.postgres.errors import postgres_errors, translated
from adapters.postgres.listener import Listener
from adapters.stored_json import decode_input, encode_input
from domain.model import AgentInput
from ports.run_control import InputHandler

CHANNEL = "agw_control"
log = logging.getLogger(__name__)


class PostgresRunControl:
    def __init__(self, pool: AsyncConnectionPool, url: str) -> None:
        self._pool = pool
        self._url = url

    @translated
    async def request_cancel(self, run_id: str) -> None:
        async with self._pool.connection() as connection:
            await connection.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"cancel {run_id}"))

    @translated
    async def request_input(self, run_id: str, agent_input: AgentInput, by: str | None) -> None:
        async with self._pool.connection() as connection:
            cursor = await connection.execute(
                "INSERT INTO control_inputs (payload) VALUES (%s) RETURNING id",
                (encode_input(agent_input, by),),
            )
            (input_id,) = await cursor.fetchone() or (0,)
            await connection.execute(
                "SELECT pg_notify(%s, %s)", (CHANNEL, f"input {run_id} {input_id}")
            )

    async def serve(
        self, on_cancel: Callable[[str], Awaitable[None]], on_input: InputHandler
    ) -> None:
        listener = Listener(self._url, CHANNEL)
        try:
            while True:
                payload = await listener.next(timeout_s=30)
                command, _, rest = (payload or "").partition(" ")
                if command == "cancel":
                    await on_cancel(rest)  # only asks the run to stop: quick
                elif command == "input":
                    run_id, _, input_id = rest.partition(" ")
                    found = await self._input(int(input_id))
                    if found is not None:
                        await on_input(run_id, *found)
        finally:
            await listener.close()

    async def _input(self, input_id: int) -> tuple[AgentInput, str | None] | None:
        try:
            with postgres_errors():
                async with self._pool.connection() as connection:
                    cursor = await connection.execute(
                        "SELECT payload FROM control_inputs WHERE id = %s", (input_id,)
                    )
                    row = await cursor.fetchone()
        except Exception:
            log.exception("cannot read input %d", input_id)
            return None
        return decode_input(row[0]) if row else None

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

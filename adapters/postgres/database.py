"""The PostgreSQL backend: one connection pool for its adapters, the schema migrated when
it starts, and history older than its days deleted every hour."""

from __future__ import annotations

import asyncio
import logging

from psycopg_pool import AsyncConnectionPool

from adapters.postgres.event_archive import PostgresEventArchive
from adapters.postgres.event_hub import PostgresEventHub
from adapters.postgres.migrations import migrate
from adapters.postgres.run_control import PostgresRunControl
from adapters.postgres.run_queue import PostgresRunQueue
from adapters.postgres.run_store import PostgresRunStore

log = logging.getLogger(__name__)
PRUNE_EVERY_S = 3600.0


class PostgresBackend:
    def __init__(self, url: str, history_days: int, max_connections: int = 20) -> None:
        # autocommit: each statement commits unless a `transaction()` block groups them.
        self._pool = AsyncConnectionPool(
            url, min_size=2, max_size=max_connections, open=False, kwargs={"autocommit": True}
        )
        self._history_days = history_days
        self.store = PostgresRunStore(self._pool)
        self.queue = PostgresRunQueue(self._pool, url)
        self.control = PostgresRunControl(self._pool, url)
        self.archive = PostgresEventArchive(self._pool)
        self.hub = PostgresEventHub(self._pool, url)  # the live hub of EVENT_BACKEND=postgres
        self._pruning: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._pool.open(wait=True, timeout=30)
        await migrate(self._pool)
        self._pruning = asyncio.create_task(self._prune_forever(), name="history-pruning")

    async def close(self) -> None:
        if self._pruning is not None:
            self._pruning.cancel()
        await self.archive.close()
        await self.hub.close_all()
        await self.queue.close()
        await self._pool.close()

    async def _prune_forever(self) -> None:
        while True:
            try:
                await self.prune()
            except Exception:
                log.exception("cannot delete the history older than %d days", self._history_days)
            await asyncio.sleep(PRUNE_EVERY_S)

    async def prune(self) -> None:
        """Deletes finished runs older than the history's days, with their events (and
        finished webhook deliveries of that age)."""
        async with self._pool.connection() as connection, connection.transaction():
            cursor = await connection.execute(
                "DELETE FROM runs WHERE created_at < now() - make_interval(days => %s)"
                " AND NOT EXISTS (SELECT 1 FROM queue WHERE queue.run_id = runs.run_id)"
                " AND NOT EXISTS (SELECT 1 FROM leases WHERE leases.run_id = runs.run_id)"
                " RETURNING stream_id",
                (self._history_days,),
            )
            streams = [stream_id for (stream_id,) in await cursor.fetchall()]
            await connection.execute("DELETE FROM events WHERE stream_id = ANY(%s)", (streams,))
            await connection.execute("DELETE FROM streams WHERE stream_id = ANY(%s)", (streams,))
            await connection.execute(
                "DELETE FROM sessions WHERE updated_at < now() - make_interval(days => %s)",
                (self._history_days,),
            )
            await connection.execute(
                "DELETE FROM webhook_deliveries WHERE status <> 'pending'"
                " AND created_at < now() - make_interval(days => %s)",
                (self._history_days,),
            )
            # Inputs sent between replicas are read at once by the run's owner.
            await connection.execute(
                "DELETE FROM control_inputs WHERE created_at < now() - interval '1 hour'"
            )
        if streams:
            log.info("deleted %d runs older than %d days", len(streams), self._history_days)

"""Every event of every run in PostgreSQL, written off the live path: publishers only add
to a buffer, and one writer task inserts what has gathered as one multi-row statement (a
batch per round trip, however many runs publish)."""

from __future__ import annotations

import asyncio
import logging

from psycopg_pool import AsyncConnectionPool

from adapters.postgres.errors import translated
from adapters.stored_json import decode_event, encode_event
from domain.model import SequencedEvent

log = logging.getLogger(__name__)

# A batch goes in by binary COPY (the cheapest way in, for this process and the server) to
# a temporary table, then on into `events` with ON CONFLICT: a batch whose commit reached
# the server but whose answer did not is sent again, and its rows are already there.
STAGE = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS events_incoming"
    " (stream_id text, seq bigint, record bytea) ON COMMIT DELETE ROWS"
)
COPY = "COPY events_incoming (stream_id, seq, record) FROM STDIN (FORMAT BINARY)"
MOVE = "INSERT INTO events SELECT * FROM events_incoming ON CONFLICT (stream_id, seq) DO NOTHING"


class PostgresEventArchive:
    """EventArchive on PostgreSQL. Past `max_backlog` unwritten events, `append` waits for
    the writer (the agent's output then waits in its pipe); a failed write is retried with
    a growing pause, so nothing appended is lost while the process lives."""

    def __init__(
        self, pool: AsyncConnectionPool, max_batch: int = 2000, max_backlog: int = 100_000
    ) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._max_backlog = max_backlog
        self._pending: list[tuple[str, int, bytes]] = []
        self._appended = 0
        self._written = 0
        self._wakeup = asyncio.Event()
        self._progress = asyncio.Condition()
        self._writer: asyncio.Task[None] | None = None

    async def append(self, stream_id: str, item: SequencedEvent) -> None:
        self._pending.append((stream_id, item.seq, encode_event(item.event)))
        self._appended += 1
        self._wakeup.set()
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_forever(), name="event-archive")
        if len(self._pending) > self._max_backlog:
            await self._written_up_to(self._appended - self._max_backlog)

    async def flush(self) -> None:
        await self._written_up_to(self._appended)

    async def _written_up_to(self, count: int) -> None:
        async with self._progress:
            await self._progress.wait_for(lambda: self._written >= count)

    async def _write_forever(self) -> None:
        pause = 0.1
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._pending[: self._max_batch]
                try:
                    await self._insert(batch)
                except Exception:
                    log.exception("cannot write %d events; retrying in %.1fs", len(batch), pause)
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 5.0)
                    continue
                pause = 0.1
                del self._pending[: len(batch)]
                async with self._progress:
                    self._written += len(batch)
                    self._progress.notify_all()

    async def _insert(self, batch: list[tuple[str, int, bytes]]) -> None:
        async with self._pool.connection() as connection, connection.transaction():
            cursor = connection.cursor()
            await cursor.execute(STAGE)
            async with cursor.copy(COPY) as copy:
                copy.set_types(["text", "int8", "bytea"])
                for row in batch:
                    await copy.write_row(row)
            await cursor.execute(MOVE)

    @translated
    async def read(
        self, stream_id: str, after_seq: int, before_seq: int | None = None, limit: int = 1000
    ) -> list[SequencedEvent]:
        async with self._pool.connection() as connection:
            cursor = await connection.execute(
                "SELECT seq, record FROM events WHERE stream_id = %s AND seq > %s"
                " AND (%s::bigint IS NULL OR seq < %s) ORDER BY seq LIMIT %s",
                (stream_id, after_seq, before_seq, before_seq, limit),
            )
            return [
                SequencedEvent(seq, decode_event(record)) for seq, record in await cursor.fetchall()
            ]

    @translated
    async def last(self, stream_id: str) -> SequencedEvent | None:
        async with self._pool.connection() as connection:
            cursor = await connection.execute(
                "SELECT seq, record FROM events WHERE stream_id = %s ORDER BY seq DESC LIMIT 1",
                (stream_id,),
            )
            row = await cursor.fetchone()
        return SequencedEvent(row[0], decode_event(row[1])) if row else None

    async def close(self, timeout_s: float = 10.0) -> None:
        """Writes what is pending (for at most `timeout_s`), then stops the writer."""
        if self._writer is None:
            return
        try:
            await asyncio.wait_for(self.flush(), timeout_s)
        except TimeoutError:
            log.error("%d events not written at shutdown", len(self._pending))
        self._writer.cancel()
        self._writer = None

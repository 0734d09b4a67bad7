"""Event streams in PostgreSQL alone, for several replicas without Redis: the database
numbers every event (a stream may be published by more than one replica over its life:
the one that queued the run, the one that runs it, the one that ends an orphan), and
readers on any replica follow the table, woken by NOTIFY.

Publishes are group-committed: what all runs of this replica publish meanwhile goes in one
transaction (lock the streams' rows in order, move their counters on, COPY the events,
NOTIFY), and each publisher waits for that commit. A run's events therefore cost a round
trip each to that run, not to the others."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncGenerator

from psycopg_pool import AsyncConnectionPool

from adapters.postgres.errors import postgres_errors, translated
from adapters.postgres.listener import Listener
from adapters.stored_json import decode_event, encode_event
from domain.errors import BackendUnavailable, StreamNotFound
from domain.model import GapEvent, SequencedEvent, StreamEvent

log = logging.getLogger(__name__)
CHANNEL = "agw_events"
PAGE = 1000
RECHECK_S = 5.0  # a reader looks again this often even if no notification came

COPY = "COPY events (stream_id, seq, record) FROM STDIN (FORMAT BINARY)"


class PostgresEventHub:
    """EventHub on PostgreSQL. Everything is retained (for the history's days), so a
    reader may go at its own pace and is never cut for falling behind."""

    def __init__(self, pool: AsyncConnectionPool, url: str, max_batch: int = 2000) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._pending: list[tuple[str, bytes, asyncio.Future[int]]] = []
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        # A reader that read before LISTEN took effect may have missed a notification.
        self._listener = Listener(url, CHANNEL, on_listen=self._wake_all)
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._dispatcher: asyncio.Task[None] | None = None

    @translated
    async def create(self, stream_id: str, after_seq: int = 0) -> None:
        async with self._pool.connection() as connection:
            await connection.execute(
                "INSERT INTO streams (stream_id, last_seq) VALUES (%s, %s)"
                " ON CONFLICT (stream_id) DO NOTHING",
                (stream_id, after_seq),
            )

    @translated
    async def exists(self, stream_id: str) -> bool:
        return await self._closed(stream_id) is not None

    async def _closed(self, stream_id: str) -> bool | None:
        """Whether the stream is closed; None if there is no such stream."""
        async with self._pool.connection() as connection:
            cursor = await connection.execute(
                "SELECT closed FROM streams WHERE stream_id = %s", (stream_id,)
            )
            row = await cursor.fetchone()
        return None if row is None else bool(row[0])

    async def publish(self, stream_id: str, event: StreamEvent) -> int:
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((stream_id, encode_event(event), done))
        self._wakeup.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_forever(), name="event-writer")
        return await done

    async def _write_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: len(batch)]
                try:
                    seqs = await self._write(batch)
                except Exception as exc:  # not retried: a retry could number them twice
                    log.exception("cannot write %d events", len(batch))
                    failure = BackendUnavailable("PostgreSQL", str(exc) or type(exc).__name__)
                    for _, _, done in batch:
                        if not done.done():
                            done.set_exception(failure)
                    continue
                for (stream_id, _, done), seq in zip(batch, seqs, strict=True):
                    if done.done():
                        continue
                    if seq is None:
                        done.set_exception(StreamNotFound("-", stream_id))
                    else:
                        done.set_result(seq)

    async def _write(self, batch: list[tuple[str, bytes, asyncio.Future[int]]]) -> list[int | None]:
        """One transaction: the seqs of the batch's events (None: no such open stream)."""
        counts = Counter(stream_id for stream_id, _, _ in batch)
        ids = sorted(counts)
        async with self._pool.connection() as connection, connection.transaction():
            # Rows locked in one order on every replica: two writers cannot deadlock.
            await connection.execute(
                "SELECT 1 FROM streams WHERE stream_id = ANY(%s) ORDER BY stream_id FOR UPDATE",
                (ids,),
            )
            cursor = await connection.execute(
                "UPDATE streams SET last_seq = streams.last_seq + v.n"
                " FROM unnest(%s::text[], %s::bigint[]) AS v(stream_id, n)"
                " WHERE streams.stream_id = v.stream_id AND NOT streams.closed"
                " RETURNING streams.stream_id, streams.last_seq",
                (ids, [counts[i] for i in ids]),
            )
            last = dict(await cursor.fetchall())
            next_seq = {sid: seq - counts[sid] + 1 for sid, seq in last.items()}
            seqs: list[int | None] = []
            rows = []
            for stream_id, record, _ in batch:
                seq = next_seq.get(stream_id)
                seqs.append(seq)
                if seq is not None:
                    rows.append((stream_id, seq, record))
                    next_seq[stream_id] = seq + 1
            async with connection.cursor().copy(COPY) as copy:
                copy.set_types(["text", "int8", "bytea"])
                for row in rows:
                    await copy.write_row(row)
            await connection.execute(
                "SELECT pg_notify(%s, v.stream_id || ' ' || v.seq)"
                " FROM unnest(%s::text[], %s::bigint[]) AS v(stream_id, seq)",
                (CHANNEL, list(last), list(last.values())),
            )
        return seqs

    @translated
    async def close(self, stream_id: str) -> None:
        async with self._pool.connection() as connection:
            await connection.execute(
                "UPDATE streams SET closed = true WHERE stream_id = %s", (stream_id,)
            )
            await connection.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"{stream_id} closed"))

    def subscribe(
        self, stream_id: str, after_seq: int = 0
    ) -> AsyncGenerator[list[SequencedEvent], None]:
        return self._follow(stream_id, after_seq)

    async def _follow(
        self, stream_id: str, after_seq: int
    ) -> AsyncGenerator[list[SequencedEvent], None]:
        woken = self._watch(stream_id)
        try:
            with postgres_errors():
                if await self._closed(stream_id) is None:
                    raise StreamNotFound("-", stream_id)
            last = after_seq
            while True:
                woken.clear()  # before reading: a commit after this read wakes us
                with postgres_errors():
                    page = await self._read(stream_id, last)
                    closed = not page and await self._closed(stream_id)
                    if closed:  # events committed between the read and the close's: read again
                        page = await self._read(stream_id, last)
                if page:
                    if page[0].seq > last + 1:  # deleted with the history
                        first = page[0].seq
                        page.insert(0, SequencedEvent(first - 1, GapEvent(first_available=first)))
                    last = page[-1].seq
                    yield page
                elif closed:  # every event committed before the close: nothing can follow
                    return
                else:
                    try:
                        await asyncio.wait_for(woken.wait(), RECHECK_S)
                    except TimeoutError:
                        pass
        finally:
            self._unwatch(stream_id, woken)

    async def _read(self, stream_id: str, after_seq: int) -> list[SequencedEvent]:
        async with self._pool.connection() as connection:
            cursor = await connection.execute(
                "SELECT seq, record FROM events WHERE stream_id = %s AND seq > %s"
                " ORDER BY seq LIMIT %s",
                (stream_id, after_seq, PAGE),
            )
            return [
                SequencedEvent(seq, decode_event(record)) for seq, record in await cursor.fetchall()
            ]

    def _watch(self, stream_id: str) -> asyncio.Event:
        woken = asyncio.Event()
        self._watchers.setdefault(stream_id, set()).add(woken)
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.create_task(self._dispatch(), name="event-notifications")
        return woken

    def _unwatch(self, stream_id: str, woken: asyncio.Event) -> None:
        watchers = self._watchers.get(stream_id)
        if watchers is not None:
            watchers.discard(woken)
            if not watchers:
                del self._watchers[stream_id]

    def _wake_all(self) -> None:
        for watchers in self._watchers.values():
            for woken in watchers:
                woken.set()

    async def _dispatch(self) -> None:
        """One LISTEN connection per replica: each notification wakes its stream's readers."""
        while True:
            payload = await self._listener.next(timeout_s=30)
            if payload:
                for woken in self._watchers.get(payload.rpartition(" ")[0], ()):
                    woken.set()

    async def close_all(self) -> None:
        """Stops the writer and the notification listener (all runs have ended)."""
        for task in (self._writer, self._dispatcher):
            if task is not None:
                task.cancel()
        await self._listener.close()

"""The run queue in PostgreSQL, shared by every replica: taken with SELECT ... FOR UPDATE
SKIP LOCKED (competing replicas never wait for each other, and each entry goes to exactly
one), pushes announced with NOTIFY so that waiting replicas wake without polling."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from psycopg_pool import AsyncConnectionPool

from adapters.postgres.errors import translated
from adapters.postgres.listener import Listener
from adapters.stored_json import decode_queued, encode_queued
from domain.errors import QueueFull
from domain.model import QueuedRun, WaitingRun

CHANNEL = "agw_queue"
PUSH_LOCK = 0x6167_7732  # "agw2": pushes take their round one at a time
ORDER = "ORDER BY priority DESC, round, seq"
# One statement (one round trip, its own transaction): lock the first entry no other
# replica holds, delete it, and move its priority's round being served on.
TAKE = f"""
WITH next AS (
    SELECT run_id FROM queue WHERE NOT (project_id = ANY(%s))
    {ORDER} LIMIT 1 FOR UPDATE SKIP LOCKED
), taken AS (
    DELETE FROM queue USING next WHERE queue.run_id = next.run_id
    RETURNING queue.priority, queue.round, queue.entry
), served AS (
    INSERT INTO queue_serving (priority, round) SELECT priority, round FROM taken
    ON CONFLICT (priority) DO UPDATE SET round = GREATEST(queue_serving.round, excluded.round)
)
SELECT entry FROM taken
"""


class PostgresRunQueue:
    """RunQueue on PostgreSQL (the fair order of ports/run_queue.py in three columns)."""

    outlives_process = True

    def __init__(self, pool: AsyncConnectionPool, url: str) -> None:
        self._pool = pool
        self._listener = Listener(url, CHANNEL)

    @translated
    async def push(self, entry: QueuedRun, max_queued: int) -> int:
        priority, project_id = entry.priority, entry.project_id
        async with self._pool.connection() as connection, connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock(%s)", (PUSH_LOCK,))
            cursor = await connection.execute(
                "SELECT count(*), count(*) FILTER (WHERE priority = %s) FROM queue", (priority,)
            )
            waiting, at_priority = await cursor.fetchone() or (0, 0)
            if waiting >= max_queued:
                raise QueueFull(max_queued)
            if not at_priority:  # nothing waits at this priority: its rounds start over
                await connection.execute(
                    "DELETE FROM queue_rounds WHERE priority = %s", (priority,)
                )
                await connection.execute(
                    "DELETE FROM queue_serving WHERE priority = %s", (priority,)
                )
            cursor = await connection.execute(
                "SELECT GREATEST("
                " (SELECT round FROM queue_serving WHERE priority = %s),"
                " (SELECT next_round FROM queue_rounds WHERE priority = %s AND project_id = %s),"
                " 0)",
                (priority, priority, project_id),
            )
            (round_,) = await cursor.fetchone() or (0,)
            await connection.execute(
                "INSERT INTO queue_rounds (priority, project_id, next_round)"
                " VALUES (%s, %s, %s) ON CONFLICT (priority, project_id)"
                " DO UPDATE SET next_round = excluded.next_round",
                (priority, project_id, round_ + 1),
            )
            cursor = await connection.execute(
                "INSERT INTO queue"
                " (run_id, project_id, priority, round, queued_at, deadline, entry)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING seq",
                (
                    entry.run_id,
                    project_id,
                    priority,
                    round_,
                    entry.queued_at,
                    entry.deadline,
                    encode_queued(entry),
                ),
            )
            (seq,) = await cursor.fetchone() or (0,)
            cursor = await connection.execute(
                "SELECT count(*) FROM queue WHERE priority > %s"
                " OR (priority = %s AND (round, seq) <= (%s, %s))",
                (priority, priority, round_, seq),
            )
            (position,) = await cursor.fetchone() or (0,)
            await connection.execute(f"NOTIFY {CHANNEL}")  # delivered at commit
        return int(position)

    @translated
    async def take(self, busy_projects: Collection[str]) -> QueuedRun | None:
        async with self._pool.connection() as connection:
            cursor = await connection.execute(TAKE, (list(busy_projects),))
            row = await cursor.fetchone()
        return decode_queued(row[0]) if row else None

    @translated
    async def remove(self, run_id: str) -> QueuedRun | None:
        async with self._pool.connection() as connection:
            cursor = await connection.execute(
                "DELETE FROM queue WHERE run_id = %s RETURNING entry", (run_id,)
            )
            row = await cursor.fetchone()
        return decode_queued(row[0]) if row else None

    @translated
    async def listing(self) -> list[WaitingRun]:
        async with self._pool.connection() as connection:
            cursor = await connection.execute(
                f"SELECT run_id, project_id, priority, queued_at FROM queue {ORDER}"
            )
            return [WaitingRun(*row) for row in await cursor.fetchall()]

    @translated
    async def count(self) -> int:
        async with self._pool.connection() as connection:
            cursor = await connection.execute("SELECT count(*) FROM queue")
            (count,) = await cursor.fetchone() or (0,)
        return int(count)

    @translated
    async def expired(self, now: datetime) -> list[str]:
        async with self._pool.connection() as connection:
            cursor = await connection.execute(
                "SELECT run_id FROM queue WHERE deadline <= %s ORDER BY deadline", (now,)
            )
            return [run_id for (run_id,) in await cursor.fetchall()]

    async def wait_for_push(self, timeout_s: float) -> None:
        await self._listener.next(timeout_s)

    async def close(self) -> None:
        await self._listener.close()

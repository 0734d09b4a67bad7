"""The schema is created at start-up, once, however many replicas start together."""

from __future__ import annotations

import asyncio

import psycopg

from adapters.postgres import PostgresBackend
from adapters.postgres.migrations import MIGRATIONS


async def test_replicas_starting_together_apply_each_migration_once(database_url):
    replicas = [PostgresBackend(database_url, history_days=30) for _ in range(4)]
    try:
        await asyncio.gather(*(replica.start() for replica in replicas))
        restarted = PostgresBackend(database_url, history_days=30)
        await restarted.start()  # nothing left to apply
        replicas.append(restarted)
    finally:
        for replica in replicas:
            await replica.close()
    with psycopg.connect(database_url) as connection:
        rows = connection.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
    assert [version for (version,) in rows] == [version for version, _, _ in MIGRATIONS]


async def test_history_older_than_its_days_is_deleted_with_its_events(database_url):
    from datetime import UTC, datetime, timedelta

    from domain.model import Run, RunStatus

    backend = PostgresBackend(database_url, history_days=7)
    await backend.start()
    try:
        now = datetime.now(UTC)
        for run_id, age in (("old", 8), ("recent", 6)):
            run = Run(
                run_id,
                "p",
                f"stream-{run_id}",
                "fake",
                RunStatus.SUCCEEDED,
                now - timedelta(days=age),
            )
            await backend.hub.create(run.stream_id)
            await backend.store.save(run)
        await backend.prune()
        assert await backend.store.get("old") is None
        assert await backend.store.get("recent") is not None
        assert not await backend.hub.exists("stream-old")
        assert await backend.hub.exists("stream-recent")
    finally:
        await backend.close()

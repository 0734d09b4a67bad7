"""The schema, as numbered migrations applied once each, in order, at start-up. Replicas
that start together take an advisory lock, so exactly one applies what is missing.

Records are stored as the JSON bytes of domain/records.py (bytea): jsonb would refuse what
agents can print (NUL characters, lone surrogates). The columns beside them are what
queries filter and sort on."""

from __future__ import annotations

import logging

from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)
LOCK_ID = 0x6167_7731  # "agw1": the advisory lock of migrations

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "runs, sessions, events, queue, leases",
        """
CREATE TABLE runs (
    run_id      text PRIMARY KEY,
    project_id  text NOT NULL,
    stream_id   text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    record      bytea NOT NULL
);
CREATE INDEX runs_by_project ON runs (project_id, created_at DESC);
CREATE INDEX runs_by_age ON runs (created_at);

CREATE TABLE sessions (
    session_id  text PRIMARY KEY,
    project_id  text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    record      bytea NOT NULL
);

CREATE TABLE events (
    stream_id   text NOT NULL,
    seq         bigint NOT NULL,
    record      bytea NOT NULL,
    PRIMARY KEY (stream_id, seq)
);

-- The fair order: priority DESC, round, seq (see ports/run_queue.py).
CREATE TABLE queue (
    run_id      text PRIMARY KEY,
    project_id  text NOT NULL,
    priority    integer NOT NULL,
    round       bigint NOT NULL,
    seq         bigserial NOT NULL,
    queued_at   timestamptz NOT NULL,
    deadline    timestamptz,
    entry       bytea NOT NULL
);
CREATE INDEX queue_order ON queue (priority DESC, round, seq);
CREATE INDEX queue_deadlines ON queue (deadline) WHERE deadline IS NOT NULL;
CREATE TABLE queue_rounds (
    priority    integer NOT NULL,
    project_id  text NOT NULL,
    next_round  bigint NOT NULL,
    PRIMARY KEY (priority, project_id)
);
CREATE TABLE queue_serving (
    priority    integer PRIMARY KEY,
    round       bigint NOT NULL
);

CREATE TABLE leases (
    run_id      text PRIMARY KEY,
    expires_at  timestamptz NOT NULL
);
""",
    ),
    (
        2,
        "streams numbered by the database (EVENT_BACKEND=postgres)",
        """
CREATE TABLE streams (
    stream_id   text PRIMARY KEY,
    last_seq    bigint NOT NULL,
    closed      boolean NOT NULL DEFAULT false
);
""",
    ),
    (
        3,
        "inputs of interactive runs between replicas",
        """
-- NOTIFY carries at most 8,000 bytes, a follow-up message up to 1 MiB: the notification
-- names the row instead.
CREATE TABLE control_inputs (
    id          bigserial PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now(),
    payload     bytea NOT NULL
);
""",
    ),
    (
        4,
        "credentials",
        """
-- The value is sealed by the gateway (AES-256-GCM, bound to project and name): the
-- database never sees it.
CREATE TABLE credentials (
    project_id   text NOT NULL,
    name         text NOT NULL,
    env          text NOT NULL,
    sealed       bytea NOT NULL,
    fingerprint  text NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (project_id, name)
);
""",
    ),
    (
        5,
        "templates and projects",
        """
CREATE TABLE templates (
    name    text PRIMARY KEY,
    record  bytea NOT NULL
);
CREATE TABLE projects (
    project_id  text PRIMARY KEY,
    record      bytea NOT NULL
);
""",
    ),
    (
        6,
        "webhook deliveries",
        """
CREATE TABLE webhook_deliveries (
    delivery_id      text PRIMARY KEY,
    project_id       text NOT NULL,
    created_at       timestamptz NOT NULL,
    next_attempt_at  timestamptz NOT NULL,
    status           text NOT NULL,
    record           bytea NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_project ON webhook_deliveries (project_id, created_at);
""",
    ),
    (
        7,
        "runs listed by status across projects (the console)",
        """
ALTER TABLE runs ADD COLUMN status text;
-- json, not jsonb: it takes what jsonb refuses (NUL escapes) and reads only the status
UPDATE runs SET status = convert_from(record, 'UTF8')::json ->> 'status';
ALTER TABLE runs ALTER COLUMN status SET NOT NULL;
CREATE INDEX runs_by_status ON runs (status, created_at DESC);
""",
    ),
]


async def migrate(pool: AsyncConnectionPool) -> list[int]:
    """Applies the migrations this database lacks; returns their numbers."""
    applied_now = []
    async with pool.connection() as connection, connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cursor = await connection.execute("SELECT version FROM schema_migrations")
        applied = {version for (version,) in await cursor.fetchall()}
        for version, name, sql in MIGRATIONS:
            if version in applied:
                continue
            await connection.execute(sql)
            await connection.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
            )
            applied_now.append(version)
            log.info("schema migration %d applied: %s", version, name)
    return applied_now

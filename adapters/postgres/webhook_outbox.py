"""Webhook deliveries in PostgreSQL (migration 6); claimed with FOR UPDATE SKIP LOCKED, so
replicas never take the same one at once."""

from __future__ import annotations

from datetime import datetime, timedelta

from psycopg_pool import AsyncConnectionPool

from adapters.postgres.errors import translated
from adapters.stored_json import decode_delivery, encode_delivery
from domain.webhooks import Delivery


class PostgresWebhookOutbox:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    @translated
    async def add(self, delivery: Delivery) -> None:
        d = delivery
        async with self._pool.connection() as connection:
            await connection.execute(
                "INSERT INTO webhook_deliveries"
                " (delivery_id, project_id, created_at, next_attempt_at, status, record)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    d.delivery_id,
                    d.project_id,
                    d.created_at,
                    d.next_attempt_at,
                    d.status,
                    encode_delivery(d),
                ),
            )

    @translated
    async def claim_due(self, now: datetime, lease_s: float, limit: int) -> list[Delivery]:
        async with self._pool.connection() as connection:
            cursor = await connection.execute(
                "UPDATE webhook_deliveries SET next_attempt_at = %s WHERE delivery_id IN ("
                " SELECT delivery_id FROM webhook_deliveries"
                " WHERE status = 'pending' AND next_attempt_at <= %s"
                " ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED)"
                " RETURNING record",
                (now + timedelta(seconds=lease_s), now, limit),
            )
            claimed = [decode_delivery(bytes(record)) for (record,) in await cursor.fetchall()]
        return sorted(claimed, key=lambda d: d.next_attempt_at)  # RETURNING keeps no order

    @translated
    async def save(self, delivery: Delivery) -> None:
        d = delivery
        async with self._pool.connection() as connection:
            await connection.execute(
                "UPDATE webhook_deliveries SET next_attempt_at = %s, status = %s, record = %s"
                " WHERE delivery_id = %s",
                (d.next_attempt_at, d.status, encode_delivery(d), d.delivery_id),
            )

    @translated
    async def list_for_project(self, project_id: str, limit: int) -> list[Delivery]:
        async with self._pool.connection() as connection:
            cursor = await connection.execute(
                "SELECT record FROM webhook_deliveries WHERE project_id = %s"
                " ORDER BY created_at DESC LIMIT %s",
                (project_id, limit),
            )
            return [decode_delivery(bytes(record)) for (record,) in await cursor.fetchall()]

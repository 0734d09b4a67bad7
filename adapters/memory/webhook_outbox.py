"""Webhook deliveries in process memory: lost on restart (Redis and PostgreSQL keep them)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from domain.webhooks import Delivery


class MemoryWebhookOutbox:
    """Keeps at most `max_deliveries` (finished ones go first)."""

    def __init__(self, max_deliveries: int = 10_000) -> None:
        self._deliveries: dict[str, Delivery] = {}  # in the order added
        self._max = max_deliveries

    async def add(self, delivery: Delivery) -> None:
        self._deliveries[delivery.delivery_id] = delivery
        if len(self._deliveries) > self._max:
            finished = next((k for k, d in self._deliveries.items() if d.status != "pending"), None)
            self._deliveries.pop(finished or next(iter(self._deliveries)))

    async def claim_due(self, now: datetime, lease_s: float, limit: int) -> list[Delivery]:
        due = sorted(
            (
                d
                for d in self._deliveries.values()
                if d.status == "pending" and d.next_attempt_at <= now
            ),
            key=lambda d: d.next_attempt_at,
        )[:limit]
        hidden_until = now + timedelta(seconds=lease_s)
        for delivery in due:
            self._deliveries[delivery.delivery_id] = replace(delivery, next_attempt_at=hidden_until)
        return due

    async def save(self, delivery: Delivery) -> None:
        self._deliveries[delivery.delivery_id] = delivery

    async def list_for_project(self, project_id: str, limit: int) -> list[Delivery]:
        mine = [d for d in self._deliveries.values() if d.project_id == project_id]
        return sorted(mine, key=lambda d: d.created_at, reverse=True)[:limit]

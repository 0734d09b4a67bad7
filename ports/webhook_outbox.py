from __future__ import annotations

from datetime import datetime
from typing import Protocol

from domain.webhooks import Delivery


class WebhookOutbox(Protocol):
    """Webhook deliveries waiting to be sent, and what became of them.

    Guarantees of every implementation: `add` keeps a new delivery; `claim_due` returns
    up to `limit` pending deliveries whose time has come (oldest first) and hides them from
    other claims for `lease_s` (a replica that dies while sending lets another send again:
    at least once); `save` records an attempt; `list_for_project` is newest first. Kept
    across restarts where the backend is (Redis, PostgreSQL). Raises BackendUnavailable when
    its backend cannot be reached."""

    async def add(self, delivery: Delivery) -> None: ...

    async def claim_due(self, now: datetime, lease_s: float, limit: int) -> list[Delivery]: ...

    async def save(self, delivery: Delivery) -> None: ...

    async def list_for_project(self, project_id: str, limit: int) -> list[Delivery]: ...

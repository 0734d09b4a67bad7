"""One suite for every WebhookOutbox (memory, Redis, PostgreSQL): due deliveries are
claimed oldest first and hidden from other claims for the lease, saved attempts come back,
and listings are per project, newest first."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as redis

from adapters.memory import MemoryWebhookOutbox
from adapters.postgres import PostgresBackend, PostgresWebhookOutbox
from adapters.redis_store import RedisWebhookOutbox
from domain.webhooks import Delivery

T0 = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(params=["memory", "redis", "postgres"])
async def outbox(request):
    if request.param == "memory":
        yield MemoryWebhookOutbox()
        return
    if request.param == "postgres":
        backend = PostgresBackend(request.getfixturevalue("database_url"), history_days=30)
        await backend.start()
        yield PostgresWebhookOutbox(backend.store.pool)
        await backend.close()
        return
    client = redis.from_url(request.getfixturevalue("redis_server").url)
    yield RedisWebhookOutbox(client, prefix=f"t{uuid.uuid4().hex}")
    await client.aclose()


def delivery(i: int, project: str = "demo") -> Delivery:
    at = T0 + timedelta(seconds=i)
    return Delivery(
        f"msg_{i}", project, f"run{i}", "run.finished", "https://x/", "S", b"{}", at, at
    )


async def test_claims_are_oldest_first_and_hidden_for_the_lease(outbox):
    for i in (3, 1, 2):
        await outbox.add(delivery(i))
    await outbox.add(delivery(9, project="other"))
    now = T0 + timedelta(seconds=5)
    first = await outbox.claim_due(now, lease_s=60, limit=2)
    assert [d.delivery_id for d in first] == ["msg_1", "msg_2"]
    second = await outbox.claim_due(now, lease_s=60, limit=10)
    assert [d.delivery_id for d in second] == ["msg_3"]  # the others are leased
    assert await outbox.claim_due(now, lease_s=60, limit=10) == []
    later = await outbox.claim_due(now + timedelta(seconds=61), lease_s=60, limit=10)
    assert {d.delivery_id for d in later} == {"msg_1", "msg_2", "msg_3", "msg_9"}  # leases over


async def test_saved_attempts_come_back_and_finished_ones_are_not_claimed(outbox):
    await outbox.add(delivery(1))
    await outbox.add(delivery(2))
    (claimed,) = await outbox.claim_due(T0 + timedelta(seconds=1), lease_s=60, limit=1)
    done = replace(claimed, attempts=1, status="delivered", last_status_code=200)
    await outbox.save(done)
    retry_at = T0 + timedelta(seconds=30)
    (other,) = await outbox.claim_due(T0 + timedelta(seconds=2), lease_s=60, limit=1)
    await outbox.save(replace(other, attempts=1, next_attempt_at=retry_at, last_status_code=503))
    assert await outbox.claim_due(T0 + timedelta(seconds=29), lease_s=60, limit=10) == []
    (again,) = await outbox.claim_due(retry_at, lease_s=60, limit=10)
    assert again.delivery_id == "msg_2" and again.attempts == 1 and again.last_status_code == 503
    listed = await outbox.list_for_project("demo", limit=10)
    assert [d.delivery_id for d in listed] == ["msg_2", "msg_1"]
    assert listed[1].status == "delivered" and listed[1].body == b"{}"

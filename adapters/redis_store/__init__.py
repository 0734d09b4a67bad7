import redis.asyncio as redis

from adapters.redis_store.catalog import RedisCatalog
from adapters.redis_store.credential_store import RedisCredentialStore
from adapters.redis_store.event_hub import RedisEventHub
from adapters.redis_store.run_control import RedisRunControl
from adapters.redis_store.run_queue import RedisRunQueue
from adapters.redis_store.run_store import RedisRunStore
from adapters.redis_store.webhook_outbox import RedisWebhookOutbox

__all__ = [
    "RedisCatalog",
    "RedisCredentialStore",
    "RedisEventHub",
    "RedisRunControl",
    "RedisRunQueue",
    "RedisRunStore",
    "RedisWebhookOutbox",
    "open_platform_stores",
    "open_redis",
]


def open_redis(
    url: str, retain_events: int, retention_s: float, max_pending: int, max_connections: int
) -> tuple[RedisEventHub, RedisRunStore, RedisRunControl, RedisRunQueue]:
    """Hub, store, control and queue sharing one client (it connects on first use). Past
    `max_connections` a command waits for a free connection instead of failing: every
    followed stream holds one for its blocking read."""
    pool = redis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=20)
    client = redis.Redis(connection_pool=pool)
    hub = RedisEventHub(
        client, retain_events=retain_events, retention_s=retention_s, max_pending=max_pending
    )
    return hub, RedisRunStore(client), RedisRunControl(client), RedisRunQueue(client)


def open_platform_stores(url: str) -> tuple[RedisCredentialStore, RedisCatalog, RedisWebhookOutbox]:
    """Credentials, templates and projects, webhook deliveries, on one small client of
    their own: they are read once per run start or event, not per streamed event."""
    client = redis.Redis.from_url(url, max_connections=16)
    return RedisCredentialStore(client), RedisCatalog(client), RedisWebhookOutbox(client)

import redis.asyncio as redis

from adapters.redis_store.catalog import RedisCatalog
from adapters.redis_store.credential_store import RedisCredentialStore
from adapters.redis_store.event_hub import BLOCK_MS, RedisEventHub
from adapters.redis_store.run_control import RedisRunControl
from adapters.redis_store.run_queue import RedisRunQueue
from adapters.redis_store.run_store import RedisRunStore
from adapters.redis_store.webhook_outbox import RedisWebhookOutbox

__all__ = [
    "BLOCK_MS",
    "RedisCatalog",
    "RedisCredentialStore",
    "RedisEventHub",
    "RedisRunControl",
    "RedisRunQueue",
    "RedisRunStore",
    "RedisWebhookOutbox",
    "connect",
    "open_platform_stores",
    "open_redis",
]

# redis-py gives up on a reply after its socket timeout (5 s by default since 6.0), and the
# hub's blocking XREAD is answered only after up to BLOCK_MS: a follower of a quiet stream
# raced the two and sometimes lost, ending its stream with "Timeout reading". Replies may
# take the block time and a margin; a connection silent for longer is dead.
READ_TIMEOUT_S = BLOCK_MS / 1000 + 10.0


def connect(url: str, max_connections: int) -> redis.Redis:
    """A client that connects on first use. Past `max_connections` a command waits for a
    free connection instead of failing."""
    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=20, socket_timeout=READ_TIMEOUT_S
    )
    return redis.Redis(connection_pool=pool)


def open_redis(
    url: str, retain_events: int, retention_s: float, max_pending: int, max_connections: int
) -> tuple[RedisEventHub, RedisRunStore, RedisRunControl, RedisRunQueue]:
    """Hub, store, control and queue sharing one client: every followed stream holds one of
    its `max_connections` for its blocking read."""
    client = connect(url, max_connections)
    hub = RedisEventHub(
        client, retain_events=retain_events, retention_s=retention_s, max_pending=max_pending
    )
    return hub, RedisRunStore(client), RedisRunControl(client), RedisRunQueue(client)


def open_platform_stores(url: str) -> tuple[RedisCredentialStore, RedisCatalog, RedisWebhookOutbox]:
    """Credentials, templates and projects, webhook deliveries, on one small client of
    their own: they are read once per run start or event, not per streamed event."""
    client = connect(url, max_connections=16)
    return RedisCredentialStore(client), RedisCatalog(client), RedisWebhookOutbox(client)

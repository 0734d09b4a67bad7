from adapters.postgres.catalog import PostgresCatalog
from adapters.postgres.credential_store import PostgresCredentialStore
from adapters.postgres.database import PostgresBackend
from adapters.postgres.event_archive import PostgresEventArchive
from adapters.postgres.event_hub import PostgresEventHub
from adapters.postgres.run_control import PostgresRunControl
from adapters.postgres.run_queue import PostgresRunQueue
from adapters.postgres.run_store import PostgresRunStore
from adapters.postgres.webhook_outbox import PostgresWebhookOutbox

__all__ = [
    "PostgresBackend",
    "PostgresCatalog",
    "PostgresCredentialStore",
    "PostgresEventArchive",
    "PostgresEventHub",
    "PostgresRunControl",
    "PostgresRunQueue",
    "PostgresRunStore",
    "PostgresWebhookOutbox",
]

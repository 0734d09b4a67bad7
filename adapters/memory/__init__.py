from adapters.memory.catalog import MemoryCatalog
from adapters.memory.credential_store import MemoryCredentialStore
from adapters.memory.event_hub import MemoryEventHub
from adapters.memory.run_control import LocalRunControl
from adapters.memory.run_queue import MemoryRunQueue
from adapters.memory.run_store import MemoryRunStore
from adapters.memory.webhook_outbox import MemoryWebhookOutbox

__all__ = [
    "LocalRunControl",
    "MemoryCatalog",
    "MemoryCredentialStore",
    "MemoryEventHub",
    "MemoryRunQueue",
    "MemoryRunStore",
    "MemoryWebhookOutbox",
]

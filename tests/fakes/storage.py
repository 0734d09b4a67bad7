"""Storage for tests that do not care which: the in-memory adapters."""

from __future__ import annotations

from adapters.memory import LocalRunControl, MemoryEventHub, MemoryRunQueue, MemoryRunStore
from domain.runs import Storage
from ports.event_hub import EventHub


def memory_storage(hub: EventHub | None = None) -> Storage:
    return Storage(hub or MemoryEventHub(), MemoryRunStore(), LocalRunControl(), MemoryRunQueue())

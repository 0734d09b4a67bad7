from adapters.memory.event_hub import MemoryEventHub
from adapters.memory.run_store import MemoryRunStore

__all__ = ["MemoryEventHub", "MemoryRunStore"]

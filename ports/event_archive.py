from __future__ import annotations

from typing import Protocol

from domain.model import SequencedEvent


class EventArchive(Protocol):
    """Every event of every stream, kept durably with its seq.

    Guarantees:
    - `append` queues the event for writing and returns at once, unless the writes are far
      behind: then it waits until they catch up (so a backlog is bounded, and nothing is
      dropped). Events are written in batches, soon after, each exactly once.
    - `flush` returns once everything appended before the call is written.
    - `read(stream_id, after_seq, before_seq)` returns the written events with
      after_seq < seq < before_seq (None: no upper bound), in order, at most `limit`.
    - `last(stream_id)` is the written event with the highest seq, or None.
    """

    async def append(self, stream_id: str, item: SequencedEvent) -> None: ...

    async def flush(self) -> None: ...

    async def read(
        self, stream_id: str, after_seq: int, before_seq: int | None = None, limit: int = 1000
    ) -> list[SequencedEvent]: ...

    async def last(self, stream_id: str) -> SequencedEvent | None: ...

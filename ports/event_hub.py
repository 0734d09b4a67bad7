from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol

from domain.model import SequencedEvent, StreamEvent


class EventHub(Protocol):
    """Ordered, replayable event streams, one per run.

    Guarantees of every implementation:
    - `publish` assigns each event the next seq of its stream, from 1, with no gaps; it never
      blocks on subscribers.
    - `subscribe(stream_id, after_seq)` yields batches (lists) of every retained event with
      seq > after_seq, then live events, with no gap and no duplicate between the two. If
      events after `after_seq` were no longer retained, the first batch starts with a
      GapEvent (seq 0) naming the first available seq. The iteration ends after the stream
      is closed and everything was delivered. A subscriber that falls too far behind gets
      SubscriberTooSlow; the other subscribers and the publisher are unaffected.
    - `close` marks a stream finished; finished streams stay replayable for a retention time.
    - `create` makes a stream (nothing if it exists) whose first event gets seq
      `after_seq + 1`: a stream continued from an archive keeps its ids; asking it for
      events up to `after_seq` gets a GapEvent first.
    """

    async def create(self, stream_id: str, after_seq: int = 0) -> None: ...

    async def publish(self, stream_id: str, event: StreamEvent) -> int: ...

    def subscribe(
        self, stream_id: str, after_seq: int = 0
    ) -> AsyncGenerator[list[SequencedEvent], None]: ...

    async def close(self, stream_id: str) -> None: ...

    async def exists(self, stream_id: str) -> bool: ...

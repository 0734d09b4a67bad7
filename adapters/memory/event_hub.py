"""The embedded event hub: every stream lives in this process's memory."""

from __future__ import annotations

import time
import weakref
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field

from domain.errors import StreamNotFound
from domain.mailbox import Mailbox
from domain.model import GapEvent, SequencedEvent, StreamEvent, approximate_size


@dataclass(eq=False, slots=True)
class _Stream:
    events: deque[SequencedEvent] = field(default_factory=deque)
    sizes: deque[int] = field(default_factory=deque)  # approximate_size of each event
    retained_bytes: int = 0
    next_seq: int = 1
    subscribers: set[Mailbox] = field(default_factory=set)
    closed_at: float | None = None


class MemoryEventHub:
    """EventHub in process memory.

    Each stream retains its last `retain_events` events, fewer if they hold more than
    `retain_bytes` (the last one is always kept); a subscriber's undelivered backlog is
    bounded by `max_pending` and a subscriber past it is dropped (SubscriberTooSlow) instead of
    blocking the publisher. Closed streams are evicted `retention_s` after they closed.

    Every method runs on the event loop and none awaits between reading and changing a
    stream, so subscribe-and-replay is atomic with respect to publish."""

    def __init__(
        self,
        retain_events: int = 10_000,
        retain_bytes: int = 64 * 1024 * 1024,
        max_pending: int = 10_000,
        retention_s: float = 3600.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._retain_events = retain_events
        self._retain_bytes = retain_bytes
        self._max_pending = max_pending
        self._retention_s = retention_s
        self._monotonic = monotonic
        self._streams: dict[str, _Stream] = {}
        self._closed_order: deque[tuple[float, str]] = deque()  # (closed_at, id), oldest first

    async def create(self, stream_id: str) -> None:
        self._evict_expired()
        self._streams.setdefault(stream_id, _Stream())

    async def exists(self, stream_id: str) -> bool:
        self._evict_expired()
        return stream_id in self._streams

    async def publish(self, stream_id: str, event: StreamEvent) -> int:
        stream = self._get(stream_id)
        if stream.closed_at is not None:
            raise ValueError(f"stream {stream_id} is closed")
        sequenced = SequencedEvent(stream.next_seq, event)
        stream.next_seq += 1
        self._retain(stream, sequenced)
        for mailbox in stream.subscribers:
            mailbox.offer((sequenced,))
        return sequenced.seq

    async def close(self, stream_id: str) -> None:
        stream = self._get(stream_id)
        if stream.closed_at is None:
            stream.closed_at = self._monotonic()
            self._closed_order.append((stream.closed_at, stream_id))
            for mailbox in stream.subscribers:
                mailbox.end()

    def subscribe(
        self, stream_id: str, after_seq: int = 0
    ) -> AsyncGenerator[list[SequencedEvent], None]:
        stream = self._get(stream_id)
        # Snapshot the backlog and register in the same step: nothing published in between.
        backlog = self._backlog(stream, after_seq)
        mailbox = Mailbox(self._max_pending)
        if stream.closed_at is None:
            stream.subscribers.add(mailbox)
        else:
            mailbox.end()
        delivery = self._deliver(stream, mailbox, backlog)
        # A generator dropped before it started runs no `finally`: unregister it then too.
        weakref.finalize(delivery, stream.subscribers.discard, mailbox)
        return delivery

    async def _deliver(
        self, stream: _Stream, mailbox: Mailbox, backlog: list[SequencedEvent]
    ) -> AsyncGenerator[list[SequencedEvent], None]:
        try:
            if backlog:
                yield backlog
            while (batch := await mailbox.take()) is not None:
                yield batch
        finally:
            stream.subscribers.discard(mailbox)

    def _retain(self, stream: _Stream, sequenced: SequencedEvent) -> None:
        size = approximate_size(sequenced.event)
        stream.events.append(sequenced)
        stream.sizes.append(size)
        stream.retained_bytes += size
        while len(stream.events) > 1 and (
            len(stream.events) > self._retain_events or stream.retained_bytes > self._retain_bytes
        ):
            stream.events.popleft()
            stream.retained_bytes -= stream.sizes.popleft()

    def _backlog(self, stream: _Stream, after_seq: int) -> list[SequencedEvent]:
        if not stream.events:
            return []
        first = stream.events[0].seq
        if after_seq + 1 >= first:
            start = after_seq + 1 - first
            return [stream.events[i] for i in range(start, len(stream.events))]
        # Asked for events no longer retained: say so, with an id that resumes correctly.
        gap = SequencedEvent(first - 1, GapEvent(first_available=first))
        return [gap, *stream.events]

    def _get(self, stream_id: str) -> _Stream:
        self._evict_expired()
        stream = self._streams.get(stream_id)
        if stream is None:
            raise StreamNotFound("-", stream_id)
        return stream

    def _evict_expired(self) -> None:
        deadline = self._monotonic() - self._retention_s
        while self._closed_order and self._closed_order[0][0] <= deadline:
            _, stream_id = self._closed_order.popleft()
            self._streams.pop(stream_id, None)

"""The embedded event hub: every stream lives in this process's memory."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
import functools
import io
import pickle
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

from domain.errors import StreamNotFound, SubscriberTooSlow
from domain.model import GapEvent, SequencedEvent, StreamEvent, approximate_size

MAX_BATCH = 1000  # events handed to a subscriber at once: bounds one chunk's size
# The newest events of a stream stay objects, which live subscribers read; older ones are
# packed (pickled) PACK at a time. Objects kept for long are what the cyclic garbage
# collector scans again and again: with a hundred runs' retained events as objects, its
# full passes stalled every stream for 14-30 ms (benchmarks/stream_bench.py, paced), and
# they grow with retention. Bytes are never scanned, and are smaller (43 bytes for a
# short delta).
PACK = 64


class _Packer(pickle.Pickler):
    """Pickles the model's dataclasses as their class and field values: the default for a
    slotted dataclass looks its fields up again for every object, which made a pack of
    deltas cost 5x as much (183 against 36 us for 64), and the bytes larger."""

    def reducer_override(self, obj: Any) -> Any:
        names = _init_fields(type(obj))
        if names is None:
            return NotImplemented
        return type(obj), tuple([getattr(obj, name) for name in names])


@functools.cache
def _init_fields(cls: type) -> tuple[str, ...] | None:
    """The field names of a dataclass that its __init__ takes in order; None for any other
    class (pickled the default way)."""
    if not dataclasses.is_dataclass(cls):
        return None
    fields = dataclasses.fields(cls)
    if not all(f.init for f in fields):
        return None
    return tuple(f.name for f in fields)


def _dumps(events: list[SequencedEvent]) -> bytes:
    buffer = io.BytesIO()
    _Packer(buffer, pickle.HIGHEST_PROTOCOL).dump(events)
    return buffer.getvalue()


@dataclass(eq=False, slots=True)
class _Stream:
    """The retained log, events first_seq .. next_seq - 1: the newest as objects in
    `events` (fewer than 2 x PACK), the older in `packed`, PACK events each, contiguous
    and ending where `events` begins (the first may begin before first_seq: trimming
    advances first_seq and drops only whole packs). ends[i] is the number of bytes
    published up to and including seq first_seq + i (approximate_size), so a byte budget
    and a reader's unread bytes are one subtraction each."""

    events: list[SequencedEvent] = field(default_factory=list)
    packed: list[bytes | list[SequencedEvent]] = field(default_factory=list)
    unpacked: tuple[int, list[SequencedEvent]] | None = None  # the last pack read, by index
    ends: list[int] = field(default_factory=list)
    first_seq: int = 1
    next_seq: int = 1
    published_bytes: int = 0
    trimmed_bytes: int = 0  # published before first_seq
    closed_at: float | None = None
    # One future per waiting reader, resolved by the next publish or close (a shared one
    # would need asyncio.shield, so that one reader's cancel is not everyone's: twice the
    # objects and callbacks per event)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    readers: int = 0  # subscriptions being iterated

    def bytes_before(self, seq: int) -> int:
        """Bytes published before `seq` (a retained seq, or next_seq)."""
        index = seq - self.first_seq
        return self.trimmed_bytes if index <= 0 else self.ends[index - 1]

    @property
    def retained(self) -> int:
        return self.next_seq - self.first_seq

    @property
    def objects_from(self) -> int:
        """The seq of events[0] (next_seq if there is none)."""
        return self.next_seq - len(self.events)

    @property
    def packed_from(self) -> int:
        """The seq of the first packed event."""
        return self.objects_from - len(self.packed) * PACK

    def pack(self) -> None:
        """Packs the oldest PACK of `events`. An event that cannot be pickled keeps its pack
        as objects: retention never loses an event."""
        chunk = self.events[:PACK]
        try:
            packed: bytes | list[SequencedEvent] = _dumps(chunk)
        except (pickle.PicklingError, TypeError, AttributeError):
            packed = chunk
        self.packed.append(packed)
        del self.events[:PACK]

    def read(self, cursor: int) -> list[SequencedEvent]:
        """Up to MAX_BATCH retained events from `cursor` (first_seq <= cursor < next_seq)."""
        objects_from, packed_from = self.objects_from, self.packed_from
        batch: list[SequencedEvent] = []
        while cursor < objects_from and len(batch) < MAX_BATCH:
            index = (cursor - packed_from) // PACK
            pack_from = packed_from + index * PACK
            batch += self._unpack(index)[cursor - pack_from :]
            cursor = pack_from + PACK
        if cursor >= objects_from and len(batch) < MAX_BATCH:
            start = cursor - objects_from
            batch += self.events[start : start + MAX_BATCH - len(batch)]
        return batch[:MAX_BATCH]

    def _unpack(self, index: int) -> list[SequencedEvent]:
        packed = self.packed[index]
        if isinstance(packed, list):
            return packed
        if self.unpacked is None or self.unpacked[0] != index:
            # kept: the stream's other readers replay the same objects (encoded once)
            self.unpacked = (index, pickle.loads(packed))  # our own bytes, never a peer's
        return self.unpacked[1]

    def drop_before(self, seq: int) -> None:
        """Forgets the events before `seq` (ends and bytes are the caller's)."""
        whole = min((seq - self.packed_from) // PACK, len(self.packed)) if self.packed else 0
        if whole > 0:
            del self.packed[:whole]
            self.unpacked = None  # its index has moved
        objects_from = self.objects_from
        if seq > objects_from:
            del self.events[: seq - objects_from]
        self.first_seq = seq


class MemoryEventHub:
    """EventHub in process memory.

    Subscribers read the one retained log of their stream by cursor: publishing appends
    once and wakes them, whatever their number, and nobody holds a private copy. A stream
    retains at least its last `retain_events` events, fewer if they hold more than
    `retain_bytes` (the last one is always kept). A subscriber is too slow, and dropped
    (SubscriberTooSlow), once more than `max_pending` events, or more than half the byte
    budget, published since it subscribed wait unread: with retention well above that (the
    settings insist on twice), a dropped subscriber resumes with Last-Event-ID and loses
    nothing. Closed streams are evicted `retention_s` after they closed.

    Every method runs on the event loop and none awaits between reading and changing a
    stream, so subscribe-and-replay is atomic with respect to publish."""

    def __init__(
        self,
        retain_events: int = 100_000,
        retain_bytes: int = 64 * 1024 * 1024,
        max_pending: int = 10_000,
        retention_s: float = 3600.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._retain_events = retain_events
        self._trim_at = retain_events + max(retain_events // 16, 1)  # a 16th of slack
        self._retain_bytes = retain_bytes
        self._max_pending = max_pending
        self._max_pending_bytes = retain_bytes // 2
        self._retention_s = retention_s
        self._monotonic = monotonic
        self._streams: dict[str, _Stream] = {}
        self._closed_order: deque[tuple[float, str]] = deque()  # (closed_at, id), oldest first

    async def create(self, stream_id: str, after_seq: int = 0) -> None:
        self._evict_expired()
        if stream_id not in self._streams:
            self._streams[stream_id] = _Stream(first_seq=after_seq + 1, next_seq=after_seq + 1)

    async def exists(self, stream_id: str) -> bool:
        self._evict_expired()
        return stream_id in self._streams

    async def publish(self, stream_id: str, event: StreamEvent) -> int:
        stream = self._streams.get(stream_id) or self._get(stream_id)  # hot: skip eviction
        if stream.closed_at is not None:
            raise ValueError(f"stream {stream_id} is closed")
        sequenced = SequencedEvent(stream.next_seq, event)
        stream.next_seq += 1
        stream.published_bytes += approximate_size(event)
        stream.events.append(sequenced)
        stream.ends.append(stream.published_bytes)
        if len(stream.events) >= 2 * PACK:
            stream.pack()
        if (
            stream.retained > self._trim_at
            or stream.published_bytes - stream.trimmed_bytes > self._retain_bytes
        ):
            self._trim(stream)
        if stream.waiters:
            self._wake(stream)
        return sequenced.seq

    async def close(self, stream_id: str) -> None:
        stream = self._get(stream_id)
        if stream.closed_at is None:
            stream.closed_at = self._monotonic()
            self._closed_order.append((stream.closed_at, stream_id))
            self._wake(stream)

    def subscribe(
        self, stream_id: str, after_seq: int = 0
    ) -> AsyncGenerator[list[SequencedEvent], None]:
        stream = self._get(stream_id)
        # What is published from here on is live for this subscriber; the rest is replay,
        # which it may read at its own pace.
        return self._deliver(stream, after_seq + 1, live_from=stream.next_seq)

    async def _deliver(
        self, stream: _Stream, cursor: int, live_from: int
    ) -> AsyncGenerator[list[SequencedEvent], None]:
        stream.readers += 1
        try:
            lead: list[SequencedEvent] = []
            if cursor < stream.first_seq:
                # Asked for events no longer retained (or from before the stream was
                # continued here): say so at once, with an id that resumes right.
                first = stream.first_seq
                lead = [SequencedEvent(first - 1, GapEvent(first_available=first))]
                cursor = first
                if not stream.retained:
                    yield lead
                    lead = []
            while True:
                if cursor < stream.next_seq:
                    if cursor < stream.first_seq:  # trimmed while it was replaying
                        raise SubscriberTooSlow()
                    self._check_pace(stream, max(cursor, live_from))
                    batch = stream.read(cursor)
                    cursor = batch[-1].seq + 1
                    if lead:
                        batch, lead = lead + batch, []
                    yield batch
                elif stream.closed_at is not None:
                    return
                else:
                    waiter = asyncio.get_running_loop().create_future()
                    stream.waiters.append(waiter)
                    try:
                        await waiter
                    except asyncio.CancelledError:  # a reader gone from an idle stream
                        with contextlib.suppress(ValueError):  # a publish took it already
                            stream.waiters.remove(waiter)
                        raise
        finally:
            stream.readers -= 1
            if not stream.readers:
                stream.unpacked = None

    def _check_pace(self, stream: _Stream, unread_from: int) -> None:
        """Raises SubscriberTooSlow if the live events it has not read are too many.
        The caller has checked that they are still retained."""
        pending = stream.next_seq - unread_from
        if pending > self._max_pending:
            raise SubscriberTooSlow()
        if stream.published_bytes - stream.bytes_before(unread_from) > self._max_pending_bytes:
            raise SubscriberTooSlow()

    def _trim(self, stream: _Stream) -> None:
        """Drops the oldest events past the budgets, a slice at a time (a 16th of slack),
        so that trimming costs O(1) per publish on average; the newest event always stays."""
        retained = stream.retained
        drop = 0
        if retained > self._trim_at:
            drop = retained - self._retain_events
        if stream.published_bytes - stream.trimmed_bytes > self._retain_bytes:
            # the first index whose following events fit in 15/16 of the budget
            keep_from = stream.published_bytes - self._retain_bytes * 15 // 16
            drop = max(drop, bisect.bisect_left(stream.ends, keep_from) + 1)
        drop = min(drop, retained - 1)
        if drop > 0:
            stream.trimmed_bytes = stream.ends[drop - 1]
            del stream.ends[:drop]
            stream.drop_before(stream.first_seq + drop)

    @staticmethod
    def _wake(stream: _Stream) -> None:
        waiters, stream.waiters = stream.waiters, []
        for waiter in waiters:
            if not waiter.done():  # else its reader is being cancelled
                waiter.set_result(None)

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

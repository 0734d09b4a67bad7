"""Followers of a run's stream: admitted within the limits, counted while they read."""

from __future__ import annotations

import logging
import weakref
from collections.abc import AsyncGenerator, Callable

from domain.errors import LimitExceeded, StreamNotFound, SubscriberTooSlow
from domain.model import Run, SequencedEvent, validate_project_id
from domain.runs.feed import FEED_STREAM, RunFeed
from domain.stats import GatewayStats
from ports.event_hub import EventHub
from ports.run_store import RunStore

log = logging.getLogger(__name__)


class Subscribers:
    """Opens event streams on this replica, at most `max_total` at once and
    `max_per_stream` on one stream (None = no limit)."""

    def __init__(
        self,
        hub: EventHub,
        store: RunStore,
        stats: GatewayStats,
        max_total: int | None,
        max_per_stream: int | None,
    ) -> None:
        self._hub = hub
        self._store = store
        self._stats = stats
        self._max_total = max_total
        self._max_per_stream = max_per_stream
        self._by_stream: dict[str, int] = {}

    async def open(
        self, project_id: str, stream_id: str, after_seq: int = 0
    ) -> AsyncGenerator[list[SequencedEvent], None]:
        """The run's events after `after_seq` in batches: retained ones, then live ones.
        Checks everything before returning, so an HTTP response can still choose its status."""
        validate_project_id(project_id)
        run = await self._store.find_by_stream(stream_id)
        if run is None or run.project_id != project_id or not await self._hub.exists(stream_id):
            raise StreamNotFound(project_id, stream_id)
        self._admit(stream_id)
        try:
            batches = self._hub.subscribe(stream_id, max(after_seq, 0))
        except BaseException:
            self._release(stream_id)
            raise
        return self._counted(stream_id, batches)

    def open_feed(
        self, feed: RunFeed, shows: Callable[[Run], bool], after_seq: int = 0
    ) -> AsyncGenerator[list[SequencedEvent], None]:
        """The runs feed, admitted and counted as one more stream."""
        self._admit(FEED_STREAM)
        return self._counted(FEED_STREAM, feed.subscribe(max(after_seq, 0), shows))

    def _admit(self, stream_id: str) -> None:
        if self._max_total is not None and self._stats.subscribers >= self._max_total:
            raise LimitExceeded("max_subscribers", f"{self._max_total} event streams are open", 5)
        count = self._by_stream.get(stream_id, 0)
        if self._max_per_stream is not None and count >= self._max_per_stream:
            raise LimitExceeded(
                "max_subscribers_per_stream",
                f"this stream has {count} subscribers (at most {self._max_per_stream})",
                5,
            )
        self._by_stream[stream_id] = count + 1
        self._stats.subscribers += 1

    def _release(self, stream_id: str) -> None:
        count = self._by_stream.pop(stream_id) - 1
        if count:
            self._by_stream[stream_id] = count
        self._stats.subscribers -= 1

    def _counted(
        self, stream_id: str, batches: AsyncGenerator[list[SequencedEvent], None]
    ) -> AsyncGenerator[list[SequencedEvent], None]:
        """`batches`, counted: the subscriber slot is released exactly once, when the
        iteration ends, or when the generator is dropped without ever being started (a
        client gone before its response began: no `finally` runs then)."""
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._release(stream_id)

        async def deliver() -> AsyncGenerator[list[SequencedEvent], None]:
            try:
                async for batch in batches:
                    yield batch
                    self._stats.events_delivered += len(batch)
            except SubscriberTooSlow:
                self._stats.slow_disconnects += 1
                raise
            finally:
                release()
                await batches.aclose()

        generator = deliver()
        weakref.finalize(generator, release)
        return generator

    def note_slow(self) -> None:
        """A client that took no data within the send timeout was disconnected."""
        self._stats.slow_disconnects += 1
        # uvicorn then logs "ASGI callable returned without completing response": that
        # unfinished response is this one, cut on purpose.
        log.info("a subscriber that took no data was disconnected")

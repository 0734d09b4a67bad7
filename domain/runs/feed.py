"""The runs feed: every saved run record, as one event stream across projects (the
console's live list). It rides on the event hub, so it has ids, replay after
Last-Event-ID and every replica's records, on every backend."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable, Collection

from domain.errors import StreamNotFound
from domain.model import GapEvent, Run, RunChangedEvent, RunStatus, SequencedEvent, Session
from ports.event_hub import EventHub
from ports.run_store import RunStore

log = logging.getLogger(__name__)
FEED_STREAM = "runs-feed"  # no run's stream id looks like this (they are 22 random chars)


class RunFeed:
    def __init__(self, hub: EventHub) -> None:
        self._hub = hub
        # The id of the last change this replica published: a list taken after it is at
        # least that fresh, so a client that lists and then follows the feed from here
        # misses nothing and is not sent the feed's whole history. With several replicas
        # it may be behind the others' ids: then the client gets a few records it has.
        self.last_seq = 0

    async def publish(self, run: Run) -> None:
        """Tells the feed of a saved record. The feed never fails a run: a hub that cannot
        take the event costs the feed this one update (logged), nothing else."""
        try:
            try:
                seq = await self._hub.publish(FEED_STREAM, RunChangedEvent(run))
            except StreamNotFound:  # the first record ever, or the feed expired unused
                await self._hub.create(FEED_STREAM)
                seq = await self._hub.publish(FEED_STREAM, RunChangedEvent(run))
            # the newest, not the largest: ids start again at 1 when the feed expired
            self.last_seq = seq
        except Exception as exc:
            log.warning("the runs feed missed a change of run %s: %s", run.run_id, exc)

    async def subscribe(
        self, after_seq: int, shows: Callable[[Run], bool]
    ) -> AsyncGenerator[list[SequencedEvent], None]:
        """The records after `after_seq` that `shows` lets through, then live ones (gaps
        too: the client then lists the runs afresh)."""
        await self._hub.create(FEED_STREAM)  # nothing if it exists
        batches = self._hub.subscribe(FEED_STREAM, after_seq)
        try:
            async for batch in batches:
                shown = [
                    item
                    for item in batch
                    if isinstance(item.event, GapEvent)
                    or (isinstance(item.event, RunChangedEvent) and shows(item.event.run))
                ]
                if shown:
                    yield shown
        finally:
            await batches.aclose()


class FeedingRunStore:
    """The run store, telling the feed of every record it saves: no place that saves a
    record can forget the feed."""

    def __init__(self, store: RunStore, feed: RunFeed) -> None:
        self._store = store
        self._feed = feed

    async def save(self, run: Run) -> None:
        await self._store.save(run)
        await self._feed.publish(run)

    async def get(self, run_id: str) -> Run | None:
        return await self._store.get(run_id)

    async def find_by_stream(self, stream_id: str) -> Run | None:
        return await self._store.find_by_stream(stream_id)

    async def list_recent(
        self,
        projects: Collection[str] | None,
        status: RunStatus | None = None,
        limit: int = 100,
    ) -> list[Run]:
        return await self._store.list_recent(projects, status, limit)

    async def save_session(self, session: Session) -> None:
        await self._store.save_session(session)

    async def get_session(self, session_id: str) -> Session | None:
        return await self._store.get_session(session_id)

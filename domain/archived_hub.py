"""An event hub whose streams outlive the live hub's retention and the gateway's restarts:
each event goes to the live hub (which numbers it and fans it out) and to the archive;
what the live hub no longer holds is read back from the archive, with the same ids."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

from domain.errors import StreamNotFound
from domain.model import DoneEvent, GapEvent, SequencedEvent, StreamEvent
from ports.event_archive import EventArchive
from ports.event_hub import EventHub


class ArchivedEventHub:
    """EventHub = a live EventHub + an EventArchive. A stream the live hub does not know
    (retention over, or the process restarted) is replayed from the archive if it has
    ended, or continued in the live hub after its archived events if it has not."""

    def __init__(self, live: EventHub, archive: EventArchive) -> None:
        self._live = live
        self._archive = archive

    async def create(self, stream_id: str, after_seq: int = 0) -> None:
        await self._continue(stream_id)

    async def _continue(self, stream_id: str) -> None:
        """Makes the live stream, after the archived events if there are any."""
        if await self._live.exists(stream_id):
            return
        last = await self._archive.last(stream_id)
        await self._live.create(stream_id, after_seq=last.seq if last else 0)

    async def publish(self, stream_id: str, event: StreamEvent) -> int:
        try:
            seq = await self._live.publish(stream_id, event)
        except StreamNotFound:  # e.g. an orphan's `done` after a restart
            await self._continue(stream_id)
            seq = await self._live.publish(stream_id, event)
        await self._archive.append(stream_id, SequencedEvent(seq, event))
        return seq

    async def close(self, stream_id: str) -> None:
        await self._live.close(stream_id)

    async def exists(self, stream_id: str) -> bool:
        return await self._live.exists(stream_id) or await self._archive.last(stream_id) is not None

    def subscribe(
        self, stream_id: str, after_seq: int = 0
    ) -> AsyncGenerator[list[SequencedEvent], None]:
        return self._subscription(stream_id, after_seq)

    async def _subscription(
        self, stream_id: str, after_seq: int
    ) -> AsyncGenerator[list[SequencedEvent], None]:
        last_seen = after_seq
        if not await self._live.exists(stream_id):
            last = await self._archive.last(stream_id)
            if last is None:
                raise StreamNotFound("-", stream_id)
            async for page in self._archived(stream_id, after_seq, last.seq + 1):
                yield page
                last_seen = page[-1].seq
            if isinstance(last.event, DoneEvent):
                return  # ended: the archive is the whole stream
            await self._live.create(stream_id, after_seq=last.seq)
        async with contextlib.aclosing(self._live.subscribe(stream_id, last_seen)) as batches:
            async for batch in batches:
                if (
                    batch[0].seq == last_seen + 1
                    and batch[-1].seq == last_seen + len(batch)
                    and not isinstance(batch[0].event, GapEvent)
                ):  # contiguous, as nearly always: passed on untouched
                    last_seen = batch[-1].seq
                    yield batch
                    continue
                filled: list[SequencedEvent] = []
                for item in batch:
                    if isinstance(item.event, GapEvent):
                        continue  # the next event says where it resumes
                    if item.seq > last_seen + 1:  # the live hub no longer has these
                        await self._archive.flush()
                        async for page in self._archived(stream_id, last_seen, item.seq):
                            filled += page
                        if not filled or filled[-1].seq != item.seq - 1:
                            filled.append(SequencedEvent(item.seq - 1, GapEvent(item.seq)))
                    filled.append(item)
                    last_seen = item.seq
                if filled:
                    yield filled

    async def _archived(
        self, stream_id: str, after_seq: int, before_seq: int
    ) -> AsyncGenerator[list[SequencedEvent], None]:
        while after_seq < before_seq - 1:
            page = await self._archive.read(stream_id, after_seq, before_seq)
            if not page:
                return
            yield page
            after_seq = page[-1].seq

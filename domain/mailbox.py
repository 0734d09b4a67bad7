"""One subscriber's undelivered events: what every event hub hands its subscribers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from domain.errors import SubscriberTooSlow
from domain.model import SequencedEvent


class Mailbox:
    """Events waiting for one subscriber, at most `limit` of them.

    The producer never waits: past the limit the backlog is dropped and the subscriber gets
    SubscriberTooSlow (it resumes from its last seq). All methods run on one event loop."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._pending: list[SequencedEvent] = []
        self._wakeup = asyncio.Event()
        self._ended = False
        self._failure: BaseException | None = None

    def offer(self, events: Sequence[SequencedEvent]) -> None:
        if self._failure is not None:
            return
        if len(self._pending) + len(events) > self._limit:
            self._pending = []  # free it now
            self._failure = SubscriberTooSlow()
        else:
            self._pending.extend(events)
        self._wakeup.set()

    def end(self) -> None:
        """Nothing comes after what was offered."""
        self._ended = True
        self._wakeup.set()

    def fail(self, failure: BaseException) -> None:
        """The source broke: the subscriber gets `failure` instead of what is left."""
        self._pending = []
        self._failure = failure
        self._wakeup.set()

    async def take(self) -> list[SequencedEvent] | None:
        """Everything waiting, as one batch; None once ended and empty."""
        while True:
            if self._failure is not None:
                raise self._failure
            if self._pending:
                batch, self._pending = self._pending, []
                return batch
            if self._ended:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()

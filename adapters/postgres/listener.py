"""LISTEN on a channel of PostgreSQL's, over a connection of its own (a pooled connection
cannot keep listening), reconnecting after a failure."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable

import psycopg

log = logging.getLogger(__name__)


class Listener:
    """`on_listen` is called each time LISTEN takes effect: whatever was notified before
    (while connecting, or reconnecting) was missed, and the caller may look again."""

    def __init__(
        self, url: str, channel: str, on_listen: Callable[[], None] = lambda: None
    ) -> None:
        self._url = url
        self._channel = channel
        self._on_listen = on_listen
        self._connection: psycopg.AsyncConnection[object] | None = None
        self._received: collections.deque[str] = collections.deque()

    async def next(self, timeout_s: float) -> str | None:
        """The payload of the next notification, or None after `timeout_s` or a failure
        (after a pause: the caller loops)."""
        if self._received:
            return self._received.popleft()
        try:
            if self._connection is None:
                self._connection = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
                await self._connection.execute(f"LISTEN {self._channel}")
                self._on_listen()
            # Run to its end: notifications that arrive in one packet come in one batch,
            # and a generator left at its first would drop the rest of that batch.
            async for notify in self._connection.notifies(timeout=timeout_s, stop_after=1):
                self._received.append(notify.payload)
            return self._received.popleft() if self._received else None
        except (psycopg.Error, OSError) as exc:
            log.warning("PostgreSQL channel %s lost (%s); reconnecting", self._channel, exc)
            await self.close()
            await asyncio.sleep(min(timeout_s, 1.0))
            return None

    async def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await self._connection.close()
            self._connection = None

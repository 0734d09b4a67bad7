"""LISTEN on a channel of PostgreSQL's, over a connection of its own (a pooled connection
cannot keep listening), reconnecting after a failure."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg

log = logging.getLogger(__name__)


class Listener:
    def __init__(self, url: str, channel: str) -> None:
        self._url = url
        self._channel = channel
        self._connection: psycopg.AsyncConnection[object] | None = None

    async def next(self, timeout_s: float) -> str | None:
        """The payload of the next notification, or None after `timeout_s` or a failure
        (after a pause: the caller loops)."""
        try:
            if self._connection is None:
                self._connection = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
                await self._connection.execute(f"LISTEN {self._channel}")
            async for notify in self._connection.notifies(timeout=timeout_s, stop_after=1):
                return notify.payload
            return None
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

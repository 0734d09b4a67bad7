"""Event streams in Redis Streams, so that any replica can serve any stream.

One Redis Stream per gateway stream, with explicit entry ids `<seq>-0`: the SSE id is the
entry id's first part, so resuming from any seq is one XREAD. A stream is closed by a
marker entry `<last seq>-1`, which ends every reader without polling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import redis.asyncio as redis

from adapters.redis_store.errors import redis_errors, translated
from adapters.stored_json import decode_event, encode_event
from domain.errors import StreamNotFound
from domain.mailbox import Mailbox
from domain.model import GapEvent, SequencedEvent, StreamEvent

# KEYS: stream, counter, closed flag. ARGV: payload, maxlen. Atomic, one round trip: the
# next seq and its entry, or 0 if the stream is unknown or closed.
PUBLISH = """
if redis.call('EXISTS', KEYS[2]) == 0 or redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], seq .. '-0', 'e', ARGV[1])
return seq
"""
BLOCK_MS = 5000  # how long one XREAD of a follower waits for new entries
# KEYS: stream, counter, closed flag. ARGV: retention seconds.
CLOSE = """
if redis.call('SET', KEYS[3], '1', 'NX') then
  local seq = tonumber(redis.call('GET', KEYS[2]) or '0')
  redis.call('XADD', KEYS[1], seq .. '-1', 'close', '1')
end
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[1]) end
return 1
"""


class RedisEventHub:
    """EventHub on Redis Streams. Retention: about `retain_events` entries per stream
    (approximate MAXLEN), and `retention_s` after close (EXPIRE); an open stream expires
    after `open_ttl_s` without a publish, so an abandoned stream cannot live forever.
    Subscribers of one stream on this replica share one blocking read (one connection),
    each with a backlog bounded by `max_pending`."""

    def __init__(
        self,
        client: redis.Redis,
        retain_events: int = 10_000,
        retention_s: float = 3600.0,
        open_ttl_s: float = 7 * 86400.0,
        block_ms: int = BLOCK_MS,
        max_pending: int = 10_000,
        prefix: str = "agw",
    ) -> None:
        self._max_pending = max_pending
        self._readers: dict[str, _SharedReader] = {}
        self._redis = client
        self._retain_events = retain_events
        self._retention_s = max(int(retention_s), 1)
        self._open_ttl_s = int(open_ttl_s)
        self._block_ms = block_ms
        self._prefix = prefix
        self._publish = client.register_script(PUBLISH)
        self._close = client.register_script(CLOSE)

    def _keys(self, stream_id: str) -> tuple[str, str, str]:
        base = f"{self._prefix}:stream:{{{stream_id}}}"  # one hash slot per stream
        return base, f"{base}:seq", f"{base}:closed"

    @translated
    async def create(self, stream_id: str, after_seq: int = 0) -> None:
        _, counter, _ = self._keys(stream_id)
        await self._redis.set(counter, after_seq, nx=True, ex=self._open_ttl_s)

    @translated
    async def exists(self, stream_id: str) -> bool:
        return bool(await self._redis.exists(self._keys(stream_id)[1]))

    @translated
    async def publish(self, stream_id: str, event: StreamEvent) -> int:
        seq = await self._publish(
            keys=list(self._keys(stream_id)), args=[encode_event(event), self._retain_events]
        )
        if not seq:
            raise StreamNotFound("-", stream_id)
        return int(seq)

    @translated
    async def close(self, stream_id: str) -> None:
        await self._close(keys=list(self._keys(stream_id)), args=[self._retention_s])

    def subscribe(
        self, stream_id: str, after_seq: int = 0
    ) -> AsyncGenerator[list[SequencedEvent], None]:
        return self._subscription(stream_id, after_seq)

    async def _subscription(
        self, stream_id: str, after_seq: int
    ) -> AsyncGenerator[list[SequencedEvent], None]:
        with redis_errors():
            stream, counter, closed_flag = self._keys(stream_id)
            if not await self._redis.exists(counter):
                raise StreamNotFound("-", stream_id)
            if await self._redis.exists(closed_flag):  # finished: a replay is all there is
                async for page in self._replay(stream, after_seq):
                    yield page
                return
            # Join the shared live reader, which says from where it hands us entries; the
            # replay reads up to there, so nothing is lost or repeated.
            reader = self._readers.get(stream_id)
            if reader is None:
                reader = self._readers[stream_id] = _SharedReader(self, stream_id)
            mailbox, joined_after = reader.join()
            try:
                live_after = await asyncio.shield(joined_after)
                last = after_seq
                if live_after > after_seq:
                    async for page in self._replay(stream, after_seq, live_after):
                        yield page
                        last = page[-1].seq
                    if last < live_after:  # the rest was trimmed before we could read it
                        yield [SequencedEvent(live_after, GapEvent(first_available=live_after + 1))]
                        last = live_after
                while (batch := await mailbox.take()) is not None:
                    fresh = [e for e in batch if e.seq > last]  # the client may resume ahead
                    if fresh:
                        yield fresh
                        last = fresh[-1].seq
            finally:
                reader.leave(mailbox)

    async def _replay(
        self, stream: str, after_seq: int, up_to: int | None = None
    ) -> AsyncGenerator[list[SequencedEvent], None]:
        """Retained events after `after_seq` (to `up_to`), a page at a time, up to the
        close marker."""
        last = after_seq
        while True:
            high = f"{up_to}-0" if up_to is not None else "+"
            entries = await self._redis.xrange(stream, min=f"({last}-0", max=high, count=1000)
            page, closed = _decode(entries, last)
            if page:
                yield page
                last = page[-1].seq
            if closed or len(entries) < 1000:
                return

    async def read_after(self, stream: str, cursor: str) -> list[Any]:
        reply = await self._redis.xread({stream: cursor}, count=1000, block=self._block_ms)
        return reply[0][1] if reply else []


class _SharedReader:
    """One blocking XREAD loop per stream on this replica, however many local subscribers
    it has; each subscriber has its own bounded backlog and is dropped past it."""

    def __init__(self, hub: RedisEventHub, stream_id: str) -> None:
        self._hub = hub
        self._stream_id = stream_id
        self._stream, self._counter, _ = hub._keys(stream_id)
        self.subscribers: set[Mailbox] = set()
        self._started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._last = 0  # the seq of the newest entry read (once started)
        self._task = asyncio.ensure_future(self._run())  # held: the loop keeps only weak ones

    def join(self) -> tuple[Mailbox, asyncio.Future[int]]:
        """A backlog for a new subscriber, and the seq after which it is handed every entry
        (known once the loop has read where the stream stands): what lies up to that seq
        is the subscriber's to replay."""
        mailbox = Mailbox(self._hub._max_pending)
        self.subscribers.add(mailbox)
        if not self._started.done():
            return mailbox, self._started
        joined_after = asyncio.get_running_loop().create_future()
        joined_after.set_result(self._last)
        return mailbox, joined_after

    def leave(self, mailbox: Mailbox) -> None:
        """The loop ends once its read under way returns with nobody left: it is never
        cancelled mid-command, which costs redis-py the connection, and a cancel during a
        blocking XREAD was at times not taken at all (the loop went on reading)."""
        self.subscribers.discard(mailbox)

    async def _run(self) -> None:
        try:
            newest = await self._hub._redis.xrevrange(self._stream, count=1)
            cursor = _text(newest[0][0]) if newest else "0-0"
            seq_text, _, part = cursor.partition("-")
            self._last = int(seq_text)
            self._started.set_result(self._last)
            if part == "1":  # closed since the subscriber looked: nothing can follow
                self._deliver([], closed=True)
                return
            while self.subscribers:
                entries = await self._hub.read_after(self._stream, cursor)
                if not entries:
                    if not await self._hub._redis.exists(self._counter):
                        self._deliver([], closed=True)  # expired while nobody wrote
                        return
                    continue
                cursor = _text(entries[-1][0])
                batch, closed = _decode(entries, self._last)
                if batch:
                    self._last = batch[-1].seq
                self._deliver(batch, closed)
                if closed:
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis is gone: every subscriber ends and resumes later
            if not self._started.done():
                self._started.set_exception(exc)
            for mailbox in self.subscribers:
                mailbox.fail(exc)
        finally:  # an ended loop takes no one new: a later subscriber starts another
            if self._hub._readers.get(self._stream_id) is self:
                del self._hub._readers[self._stream_id]

    def _deliver(self, batch: list[SequencedEvent], closed: bool) -> None:
        for mailbox in self.subscribers:
            mailbox.offer(batch)
            if closed:
                mailbox.end()


def _decode(entries: list[Any], last: int) -> tuple[list[SequencedEvent], bool]:
    """Stream entries -> events (a gap event where entries were trimmed), closed or not."""
    batch: list[SequencedEvent] = []
    for entry_id, fields in entries:
        seq_text, _, part = _text(entry_id).partition("-")
        seq = int(seq_text)
        if part == "1":  # the close marker
            return batch, True
        if seq > last + 1:  # trimmed away before it could be read
            batch.append(SequencedEvent(seq - 1, GapEvent(first_available=seq)))
        batch.append(SequencedEvent(seq, decode_event(fields[b"e"])))
        last = seq
    return batch, False


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

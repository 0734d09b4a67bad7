"""Event streams in Redis Streams, so that any replica can serve any stream.

One Redis Stream per gateway stream, with explicit entry ids `<seq>-0`: the SSE id is the
entry id's first part, so resuming from any seq is one XREAD. A stream is closed by a
marker entry `<last seq>-1`, which ends every reader without polling."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import redis.asyncio as redis

from adapters.redis_store.codec import decode_event, encode_event
from domain.errors import StreamNotFound
from domain.model import GapEvent, SequencedEvent, StreamEvent

# KEYS: stream, counter. ARGV: payload, maxlen. Atomic: the next seq and its entry.
PUBLISH = """
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], seq .. '-0', 'e', ARGV[1])
return seq
"""
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
    after `open_ttl_s` without a publish, so an abandoned stream cannot live forever."""

    def __init__(
        self,
        client: redis.Redis,
        retain_events: int = 10_000,
        retention_s: float = 3600.0,
        open_ttl_s: float = 7 * 86400.0,
        block_ms: int = 5000,
        prefix: str = "agw",
    ) -> None:
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

    async def create(self, stream_id: str) -> None:
        _, counter, _ = self._keys(stream_id)
        await self._redis.set(counter, 0, nx=True, ex=self._open_ttl_s)

    async def exists(self, stream_id: str) -> bool:
        return bool(await self._redis.exists(self._keys(stream_id)[1]))

    async def publish(self, stream_id: str, event: StreamEvent) -> int:
        stream, counter, closed = self._keys(stream_id)
        if not await self._redis.exists(counter) or await self._redis.exists(closed):
            raise StreamNotFound("-", stream_id)
        seq = await self._publish(
            keys=[stream, counter], args=[encode_event(event), self._retain_events]
        )
        return int(seq)

    async def close(self, stream_id: str) -> None:
        await self._close(keys=list(self._keys(stream_id)), args=[self._retention_s])

    def subscribe(
        self, stream_id: str, after_seq: int = 0
    ) -> AsyncGenerator[list[SequencedEvent], None]:
        return self._read(stream_id, after_seq)

    async def _read(
        self, stream_id: str, after_seq: int
    ) -> AsyncGenerator[list[SequencedEvent], None]:
        stream, counter, _ = self._keys(stream_id)
        if not await self._redis.exists(counter):
            raise StreamNotFound("-", stream_id)
        last = after_seq
        cursor = f"{after_seq}-0"
        while True:
            reply = await self._redis.xread({stream: cursor}, count=1000, block=self._block_ms)
            if not reply:
                if not await self._redis.exists(counter):
                    return  # expired while we waited
                continue
            batch: list[SequencedEvent] = []
            for entry_id, fields in reply[0][1]:
                seq_text, _, part = _text(entry_id).partition("-")
                seq = int(seq_text)
                cursor = _text(entry_id)
                if part == "1":  # the close marker
                    if batch:
                        yield batch
                    return
                if seq > last + 1:  # trimmed away while we were behind
                    batch.append(SequencedEvent(seq - 1, GapEvent(first_available=seq)))
                batch.append(SequencedEvent(seq, decode_event(fields[b"e"])))
                last = seq
            if batch:
                yield batch


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

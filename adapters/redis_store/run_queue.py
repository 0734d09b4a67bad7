"""The run queue in Redis, shared by every replica: each push, take and remove is one Lua
script, so an entry is handed out exactly once however many replicas compete for it.

The fair order is the lexical order of one sorted set (all scores 0) whose members spell
the sort key: `<100 - priority:3>|<round:12>|<seq:12>|<queued_at ms>|<project>|<run id>`.
Every key of the queue shares one hash tag, so the scripts stay within one cluster slot."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection
from datetime import UTC, datetime

import redis.asyncio as redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from adapters.redis_store.errors import translated
from adapters.stored_json import decode_queued, encode_queued
from domain.errors import QueueFull
from domain.model import MAX_PRIORITY, QueuedRun, WaitingRun

log = logging.getLogger(__name__)

# Shared by the scripts. KEYS: order, members (run id -> member), entries (run id -> the
# QueuedRun), deadlines (run id by epoch seconds), serving (priority -> round being taken),
# waiting (priority -> how many wait). ARGV[1]: the prefix of the per-priority hashes of
# each project's next round.
FORGET = """
local function forget(run_id, member, served)
  redis.call('ZREM', KEYS[1], member)
  redis.call('HDEL', KEYS[2], run_id)
  redis.call('HDEL', KEYS[3], run_id)
  redis.call('ZREM', KEYS[4], run_id)
  local priority = string.sub(member, 1, 3)
  if served then
    local round = tonumber(string.sub(member, 5, 16))
    if round > tonumber(redis.call('HGET', KEYS[5], priority) or '0') then
      redis.call('HSET', KEYS[5], priority, round)
    end
  end
  if redis.call('HINCRBY', KEYS[6], priority, -1) <= 0 then
    -- nothing waits at this priority: its rounds start over
    redis.call('HDEL', KEYS[6], priority)
    redis.call('HDEL', KEYS[5], priority)
    redis.call('DEL', ARGV[1] .. priority)
  end
end
"""
# KEYS as above, then the sequence counter. ARGV: next-round prefix, max queued, priority
# (3 digits), project, run id, entry, deadline ('' for none), queued_at ms, wake channel.
# The new position, or -1 if the queue is full.
PUSH = """
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return -1 end
local rounds = ARGV[1] .. ARGV[3]
local round = math.max(tonumber(redis.call('HGET', KEYS[5], ARGV[3]) or '0'),
                       tonumber(redis.call('HGET', rounds, ARGV[4]) or '0'))
redis.call('HSET', rounds, ARGV[4], round + 1)
redis.call('HINCRBY', KEYS[6], ARGV[3], 1)
local seq = redis.call('INCR', KEYS[7])
local member = ARGV[3] .. '|' .. string.format('%012d', round) .. '|' ..
  string.format('%012d', seq) .. '|' .. ARGV[8] .. '|' .. ARGV[4] .. '|' .. ARGV[5]
redis.call('ZADD', KEYS[1], 0, member)
redis.call('HSET', KEYS[2], ARGV[5], member)
redis.call('HSET', KEYS[3], ARGV[5], ARGV[6])
if ARGV[7] ~= '' then redis.call('ZADD', KEYS[4], ARGV[7], ARGV[5]) end
redis.call('PUBLISH', ARGV[9], '1')
return redis.call('ZRANK', KEYS[1], member) + 1
"""
# ARGV: next-round prefix, then the busy projects. The first entry in order of a project
# not busy, or nil. Pages through the order: the busy projects' entries are skipped.
TAKE = (
    FORGET
    + """
local busy = {}
for i = 2, #ARGV do busy[ARGV[i]] = true end
local start = 0
while true do
  local page = redis.call('ZRANGE', KEYS[1], start, start + 199)
  if #page == 0 then return false end
  for _, member in ipairs(page) do
    local rest = string.sub(member, 31)
    local cut = string.find(rest, '|', 1, true)
    local after = string.sub(rest, cut + 1)
    local cut2 = string.find(after, '|', 1, true)
    local project = string.sub(after, 1, cut2 - 1)
    if not busy[project] then
      local run_id = string.sub(after, cut2 + 1)
      local entry = redis.call('HGET', KEYS[3], run_id)
      forget(run_id, member, true)
      return entry
    end
  end
  start = start + 200
end
"""
)
# ARGV: next-round prefix, run id. The entry, or nil if it no longer waits.
REMOVE = (
    FORGET
    + """
local member = redis.call('HGET', KEYS[2], ARGV[2])
if not member then return false end
local entry = redis.call('HGET', KEYS[3], ARGV[2])
forget(ARGV[2], member, false)
return entry
"""
)


class RedisRunQueue:
    """RunQueue on Redis. Pushes are announced on a pub/sub channel, so replicas waiting
    for work wake at once instead of polling."""

    outlives_process = True

    def __init__(self, client: redis.Redis, prefix: str = "agw") -> None:
        self._redis = client
        base = f"{prefix}:{{queue}}"
        self._keys = [
            f"{base}:order",
            f"{base}:members",
            f"{base}:entries",
            f"{base}:deadlines",
            f"{base}:serving",
            f"{base}:waiting",
        ]
        self._seq = f"{base}:seq"
        self._rounds = f"{base}:rounds:"
        self._channel = f"{base}:pushed"
        self._push = client.register_script(PUSH)
        self._take = client.register_script(TAKE)
        self._remove = client.register_script(REMOVE)
        self._pubsub: PubSub | None = None

    @translated
    async def push(self, entry: QueuedRun, max_queued: int) -> int:
        deadline = str(entry.deadline.timestamp()) if entry.deadline else ""
        position = await self._push(
            keys=[*self._keys, self._seq],
            args=[
                self._rounds,
                max_queued,
                f"{MAX_PRIORITY - entry.priority:03d}",
                entry.project_id,
                entry.run_id,
                encode_queued(entry),
                deadline,
                int(entry.queued_at.timestamp() * 1000),
                self._channel,
            ],
        )
        if position < 0:
            raise QueueFull(max_queued)
        return int(position)

    @translated
    async def take(self, busy_projects: Collection[str]) -> QueuedRun | None:
        entry = await self._take(keys=self._keys, args=[self._rounds, *busy_projects])
        return decode_queued(entry) if entry else None

    @translated
    async def remove(self, run_id: str) -> QueuedRun | None:
        entry = await self._remove(keys=self._keys, args=[self._rounds, run_id])
        return decode_queued(entry) if entry else None

    @translated
    async def listing(self) -> list[WaitingRun]:
        waiting = []
        for member in await self._redis.zrange(self._keys[0], 0, -1):
            priority, _, _, queued_ms, project_id, run_id = member.decode().split("|")
            queued_at = datetime.fromtimestamp(int(queued_ms) / 1000, UTC)
            waiting.append(WaitingRun(run_id, project_id, MAX_PRIORITY - int(priority), queued_at))
        return waiting

    @translated
    async def count(self) -> int:
        return int(await self._redis.zcard(self._keys[0]))

    @translated
    async def expired(self, now: datetime) -> list[str]:
        due = await self._redis.zrangebyscore(self._keys[3], "-inf", now.timestamp())
        return [run_id.decode() for run_id in due]

    async def wait_for_push(self, timeout_s: float) -> None:
        try:
            if self._pubsub is None:
                self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                await self._pubsub.subscribe(self._channel)
            await self._pubsub.get_message(timeout=timeout_s)
        except (RedisError, OSError) as exc:  # a safety tick still wakes the queue
            log.warning("queue wake-up channel lost (%s); reconnecting", exc)
            await self.close()
            await asyncio.sleep(min(timeout_s, 1.0))

    async def close(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()
            self._pubsub = None

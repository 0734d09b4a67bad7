"""Sealed credentials in Redis: one hash per project (name -> record), and a set of the
projects that have any, so that rotation finds them without a SCAN."""

from __future__ import annotations

import redis.asyncio as redis

from adapters.redis_store.errors import translated
from adapters.stored_json import decode_credential, encode_credential
from domain.credentials import SealedCredential


class RedisCredentialStore:
    def __init__(self, client: redis.Redis, prefix: str = "agw") -> None:
        self._redis = client
        self._prefix = prefix

    def _key(self, project_id: str) -> str:
        return f"{self._prefix}:credentials:{project_id}"

    @translated
    async def put(self, credential: SealedCredential) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._key(credential.project_id), credential.name, encode_credential(credential)
            )
            pipe.sadd(f"{self._prefix}:credential-projects", credential.project_id)
            await pipe.execute()

    @translated
    async def list_for_project(self, project_id: str) -> list[SealedCredential]:
        records = await self._redis.hgetall(self._key(project_id))
        return [decode_credential(records[name]) for name in sorted(records)]

    @translated
    async def delete(self, project_id: str, name: str) -> bool:
        return bool(await self._redis.hdel(self._key(project_id), name))

    @translated
    async def list_all(self) -> list[SealedCredential]:
        projects = await self._redis.smembers(f"{self._prefix}:credential-projects")
        return [c for p in sorted(projects) for c in await self.list_for_project(p.decode())]

"""Templates and projects in Redis: one hash each (name -> record)."""

from __future__ import annotations

import redis.asyncio as redis

from adapters.redis_store.errors import translated
from adapters.stored_json import decode_project, decode_template, encode_project, encode_template
from domain.templates import Project, Template


class RedisCatalog:
    def __init__(self, client: redis.Redis, prefix: str = "agw") -> None:
        self._redis = client
        self._templates = f"{prefix}:templates"
        self._projects = f"{prefix}:projects"

    @translated
    async def put_template(self, template: Template) -> None:
        await self._redis.hset(self._templates, template.name, encode_template(template))

    @translated
    async def get_template(self, name: str) -> Template | None:
        record = await self._redis.hget(self._templates, name)
        return decode_template(record) if record else None

    @translated
    async def list_templates(self) -> list[Template]:
        records = await self._redis.hgetall(self._templates)
        return [decode_template(records[name]) for name in sorted(records)]

    @translated
    async def delete_template(self, name: str) -> bool:
        return bool(await self._redis.hdel(self._templates, name))

    @translated
    async def put_project(self, project: Project) -> None:
        await self._redis.hset(self._projects, project.project_id, encode_project(project))

    @translated
    async def get_project(self, project_id: str) -> Project | None:
        record = await self._redis.hget(self._projects, project_id)
        return decode_project(record) if record else None

    @translated
    async def list_projects(self) -> list[Project]:
        records = await self._redis.hgetall(self._projects)
        return [decode_project(records[p]) for p in sorted(records)]

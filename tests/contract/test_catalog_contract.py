"""One suite for every TemplateStore and ProjectStore (memory, Redis, PostgreSQL), through
the TemplateCatalog use case: what is stored comes back the same, and resolution reads it."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as redis

from adapters.memory import MemoryCatalog
from adapters.postgres import PostgresBackend, PostgresCatalog
from adapters.redis_store import RedisCatalog
from domain.templates import KubePlacement, RunSettings, TemplateCatalog
from tests.fakes.clock import FakeClock

SETTINGS = RunSettings(
    provider=("claude-code", "anthropic"),
    model="m",
    allowed_tools=("Read",),
    max_turns=4,
    max_budget_usd=1.5,
    mcp_servers={"mcpServers": {"x": {"command": "y"}}},
    metadata={"team": "a"},
    credentials=("GH_TOKEN",),
    kube=KubePlacement(pod="p-{project}"),
)


@pytest.fixture(params=["memory", "redis", "postgres"])
async def catalog(request):
    if request.param == "memory":
        store = MemoryCatalog()
        yield TemplateCatalog(store, store, FakeClock())
        return
    if request.param == "postgres":
        backend = PostgresBackend(request.getfixturevalue("database_url"), history_days=30)
        await backend.start()
        store = PostgresCatalog(backend.store.pool)
        yield TemplateCatalog(store, store, FakeClock())
        await backend.close()
        return
    client = redis.from_url(request.getfixturevalue("redis_server").url)
    store = RedisCatalog(client, prefix=f"t{uuid.uuid4().hex}")
    yield TemplateCatalog(store, store, FakeClock())
    await client.aclose()


async def test_templates_and_projects_come_back_as_stored(catalog):
    await catalog.put_template("b-template", SETTINGS)
    await catalog.put_template("a-template", RunSettings(model="other"))
    assert [t.name for t in await catalog.list_templates()] == ["a-template", "b-template"]
    assert (await catalog.get_template("b-template")).settings == SETTINGS
    overrides = RunSettings(
        max_turns=9, metadata={"kind": "fix"}, kube=KubePlacement(container="c")
    )
    await catalog.put_project("demo", "b-template", overrides)
    project = await catalog.get_project("demo")
    assert project.template == "b-template" and project.overrides == overrides
    resolved, name = await catalog.resolve("demo", RunSettings(model="asked"))
    assert name == "b-template" and resolved.model == "asked" and resolved.max_turns == 9
    assert resolved.metadata == {"team": "a", "kind": "fix"}
    assert resolved.kube == KubePlacement(pod="p-{project}", container="c")
    assert [p.project_id for p in await catalog.list_projects()] == ["demo"]
    await catalog.delete_template("a-template")
    assert [t.name for t in await catalog.list_templates()] == ["b-template"]

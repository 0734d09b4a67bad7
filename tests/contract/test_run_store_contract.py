"""One suite for every RunStore: memory and Redis."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as redis

from adapters.memory import MemoryRunStore
from adapters.postgres import PostgresBackend
from adapters.redis_store import RedisRunStore
from domain.model import Outcome, Run, RunStatus, Session, Transcript, Turn, TurnRole


@pytest.fixture(params=["memory", "redis", "postgres"])
async def store(request):
    if request.param == "memory":
        yield MemoryRunStore()
        return
    if request.param == "postgres":
        # The records are stamped in January 2026: a shorter history would have the
        # start-up pruning delete them while the test runs.
        url = request.getfixturevalue("database_url")
        backend = PostgresBackend(url, history_days=36500)
        await backend.start()
        yield backend.store
        await backend.close()
        return
    client = redis.from_url(request.getfixturevalue("redis_server").url)
    yield RedisRunStore(client, prefix=f"t{uuid.uuid4().hex}")
    await client.aclose()


T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_run(i: int, project: str = "demo") -> Run:
    return Run(
        run_id=f"run{i}",
        project_id=project,
        stream_id=f"stream{i}",
        provider="claude-code",
        status=RunStatus.RUNNING,
        created_at=T0 + timedelta(seconds=i),
        started_at=T0,
        providers_skipped=("opencode: down",),
        metadata={"k": "v"},
    )


async def test_save_get_and_replace(store):
    run = make_run(1)
    await store.save(run)
    assert await store.get("run1") == run
    outcome = Outcome(exit_code=0, result="ok", session_id="s", model="m", cost_usd=0.5)
    done = replace(run, status=RunStatus.SUCCEEDED, finished_at=T0, outcome=outcome)
    await store.save(done)
    assert await store.get("run1") == done
    assert await store.find_by_stream("stream1") == done
    assert await store.get("nope") is None and await store.find_by_stream("nope") is None


async def test_runs_are_listed_per_project_newest_first(store):
    for i in range(5):
        await store.save(make_run(i))
    await store.save(make_run(9, project="other"))
    listed = await store.list_recent(["demo"], limit=3)
    assert [r.run_id for r in listed] == ["run4", "run3", "run2"]
    assert [r.run_id for r in await store.list_recent(["other"])] == ["run9"]
    assert await store.list_recent(["empty"]) == []


async def test_runs_are_listed_across_projects_and_by_status(store):
    for i in range(6):
        run = make_run(i, project=("a", "b", "c")[i % 3])
        await store.save(replace(run, status=RunStatus.SUCCEEDED) if i % 2 else run)
    assert [r.run_id for r in await store.list_recent(None)] == [
        f"run{i}" for i in range(5, -1, -1)
    ]
    assert [r.run_id for r in await store.list_recent(["a", "c"])] == [
        "run5",
        "run3",
        "run2",
        "run0",
    ]
    running = await store.list_recent(None, RunStatus.RUNNING)
    assert [r.run_id for r in running] == ["run4", "run2", "run0"]
    done_in_b = await store.list_recent(["b"], RunStatus.SUCCEEDED, limit=1)
    assert [r.run_id for r in done_in_b] == ["run1"]
    # a record saved again (its status changed) keeps its place and shows its new status
    await store.save(replace(make_run(0, project="a"), status=RunStatus.FAILED))
    assert [r.run_id for r in await store.list_recent(None, RunStatus.RUNNING)] == ["run4", "run2"]
    assert (await store.list_recent(None, limit=6))[-1].status is RunStatus.FAILED
    assert await store.list_recent([], limit=5) == []


async def test_sessions(store):
    session = Session("sess1", "demo", (Turn(TurnRole.USER, "hi"), Turn(TurnRole.ASSISTANT, "yo")))
    await store.save_session(session)
    assert await store.get_session("sess1") == session
    assert await store.get_session("nope") is None
    # A CLI's transcript (any bytes) replaces what was kept of the session.
    transcript = Transcript("-work-demo/sess1.jsonl", bytes(range(256)) * 4, "k1")
    resumed = Session("sess1", "demo", transcript=transcript)
    await store.save_session(resumed)
    assert await store.get_session("sess1") == resumed

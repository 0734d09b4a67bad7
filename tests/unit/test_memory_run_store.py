"""What only the in-memory run store does: it stays bounded, in runs, projects and
sessions."""

from dataclasses import replace

from adapters.memory import MemoryRunStore
from domain.model import RunStatus, Session, Transcript
from tests.contract.test_run_store_contract import make_run


async def test_the_oldest_finished_runs_go_first_and_running_ones_stay():
    store = MemoryRunStore(max_runs_per_project=1000, max_runs=3)
    running = make_run(0, project="keep")
    await store.save(running)
    for i in range(1, 6):  # five finished runs, each of a project of its own
        await store.save(replace(make_run(i, project=f"p{i}"), status=RunStatus.SUCCEEDED))
    assert await store.get("run0") == running
    assert [await store.get(f"run{i}") is not None for i in range(1, 6)] == [
        False,
        False,
        False,
        True,
        True,
    ]
    assert await store.find_by_stream("stream1") is None
    assert await store.list_recent(["p1"]) == []
    assert len(store._by_project) == 3  # the projects of forgotten runs are forgotten too


async def test_each_project_keeps_at_most_its_own_limit():
    store = MemoryRunStore(max_runs_per_project=2)
    for i in range(4):
        await store.save(replace(make_run(i), status=RunStatus.FAILED))
    assert [run.run_id for run in await store.list_recent(["demo"])] == ["run3", "run2"]


async def test_sessions_stay_within_their_bytes_least_recently_used_first():
    store = MemoryRunStore(max_session_bytes=250)
    for name in ("a", "b", "c"):
        await store.save_session(Session(name, "demo", transcript=Transcript("s/x", b"x" * 100)))
    assert await store.get_session("a") is None  # 300 bytes: the oldest went
    await store.save_session(Session("b", "demo", transcript=Transcript("s/x", b"y" * 100)))
    await store.save_session(Session("d", "demo", transcript=Transcript("s/x", b"z" * 100)))
    assert await store.get_session("c") is None  # b was saved again: c was the oldest
    assert await store.get_session("b") is not None and await store.get_session("d") is not None
    await store.save_session(Session("huge", "demo", transcript=Transcript("s/x", b"h" * 251)))
    assert await store.get_session("huge") is None  # larger than all: not kept, nothing lost
    assert await store.get_session("b") is not None and await store.get_session("d") is not None

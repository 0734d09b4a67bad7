"""The run queue end to end: real uvicorn, the fake claude CLI as local processes, real
HTTP and SSE clients. Limits of 2 running runs; everything past them waits its turn."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.integration.helpers import read_stream, wait_until


def post(url: str, project: str, prompt: str, **body) -> dict:
    response = httpx.post(f"{url}/projects/{project}/runs", json={"prompt": prompt, **body})
    assert response.status_code == 202, response.text
    return response.json()


def record(url: str, started: dict) -> dict:
    project = started["cancel_url"].split("/")[2]
    return httpx.get(f"{url}/projects/{project}/runs/{started['run_id']}").json()


def cancel(url: str, started: dict) -> httpx.Response:
    return httpx.post(f"{url}{started['cancel_url']}", timeout=30)


@pytest.fixture
def gateway(start_gateway):
    return start_gateway(max_runs=2, max_runs_per_project=2)


def hold_capacity(url: str) -> list[dict]:
    """Two runs that go on until cancelled: every later run waits."""
    holders = [post(url, "hold", "slow forever") for _ in range(2)]
    assert all(h["status"] == "running" for h in holders)
    return holders


def test_runs_past_the_limits_wait_and_start_in_fair_order(gateway):
    holders = hold_capacity(gateway.url)
    queued = {}
    for project, count in (("a", 10), ("b", 7), ("c", 3)):
        for i in range(count):
            started = post(gateway.url, project, "lines 1 0.2")
            assert (started["status"], started["provider"]) == ("queued", None)
            queued[f"{project}{i}"] = started
    # Projects take turns; FIFO within each.
    fair = ["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2"]
    fair += [f"{p}{i}" for i in range(3, 7) for p in "ab"] + ["a7", "a8", "a9"]
    listing = httpx.get(f"{gateway.url}/queue").json()
    assert [entry["run_id"] for entry in listing] == [queued[name]["run_id"] for name in fair]
    assert [entry["position"] for entry in listing] == list(range(1, 21))
    assert listing[0]["project_id"] == "a" and listing[0]["priority"] == 0
    assert record(gateway.url, queued["a0"])["status"] == "queued"

    for holder in holders:
        assert cancel(gateway.url, holder).json()["status"] == "cancelled"
    events_of_c2 = read_stream(gateway.url, queued["c2"]["stream_url"])
    wait_until(
        lambda: all(record(gateway.url, s)["status"] == "succeeded" for s in queued.values()),
        timeout=60,
    )
    records = {name: record(gateway.url, started) for name, started in queued.items()}
    assert sorted(records, key=lambda name: records[name]["started_at"]) == fair
    assert all(r["provider"] == "claude-code" for r in records.values())

    # c2 was ninth: its stream counts down, then says running, then the agent speaks.
    statuses = [data for _, name, data in events_of_c2 if name == "status"]
    assert statuses[0] == {"status": "queued", "position": 9}
    positions = [s["position"] for s in statuses[:-1]]
    assert positions == sorted(positions, reverse=True) and len(set(positions)) == len(positions)
    assert len(positions) >= 2, "the position was told again while it changed"
    assert statuses[-1] == {"status": "running"}
    names = [name for _, name, _ in events_of_c2]
    assert names[: len(statuses)] == ["status"] * len(statuses)
    assert names[-1] == "done" and events_of_c2[-1][2]["status"] == "succeeded"
    assert [seq for seq, _, _ in events_of_c2] == list(range(1, len(events_of_c2) + 1))


def test_a_queued_run_is_cancelled_at_once_and_never_starts(gateway):
    holders = hold_capacity(gateway.url)
    waiting = post(gateway.url, "demo", "hello")
    began = time.monotonic()
    answer = cancel(gateway.url, waiting)
    assert answer.status_code == 200 and time.monotonic() - began < 2
    assert answer.json()["status"] == "cancelled" and answer.json()["provider"] is None
    events = read_stream(gateway.url, waiting["stream_url"])
    assert [name for _, name, _ in events] == ["status", "done"]
    assert events[-1][2]["status"] == "cancelled"
    assert httpx.get(f"{gateway.url}/queue").json() == []
    for holder in holders:
        cancel(gateway.url, holder)
    time.sleep(0.5)  # room now: a run that had been started would have its folder
    assert not (gateway.workspace / "demo").exists()
    assert cancel(gateway.url, waiting).json()["status"] == "cancelled"  # still final


def test_a_run_that_waits_longer_than_its_queue_timeout_times_out(gateway):
    holders = hold_capacity(gateway.url)
    waiting = post(gateway.url, "demo", "hello", queue_timeout_s=1)
    events = read_stream(gateway.url, waiting["stream_url"], timeout=10)
    done = events[-1][2]
    assert done["status"] == "timed_out" and "queue_timeout_s" in done["error"]
    assert record(gateway.url, waiting)["status"] == "timed_out"
    for holder in holders:
        cancel(gateway.url, holder)


def test_a_higher_priority_run_goes_first(gateway):
    holders = hold_capacity(gateway.url)
    normal = post(gateway.url, "a", "hello")
    urgent = post(gateway.url, "b", "hello", priority=50)
    listing = httpx.get(f"{gateway.url}/queue").json()
    assert [e["run_id"] for e in listing] == [urgent["run_id"], normal["run_id"]]
    assert [e["priority"] for e in listing] == [50, 0]
    for holder in holders:
        cancel(gateway.url, holder)


def test_past_max_queued_a_run_is_429_with_retry_after(start_gateway):
    gateway = start_gateway(max_runs=2, max_queued=1)
    holders = hold_capacity(gateway.url)
    post(gateway.url, "demo", "hello")
    refused = httpx.post(f"{gateway.url}/projects/demo/runs", json={"prompt": "hello"})
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "limit_exceeded"
    assert int(refused.headers["retry-after"]) > 0
    for holder in holders:
        cancel(gateway.url, holder)


def test_an_unknown_provider_is_refused_before_the_run_waits(gateway):
    holders = hold_capacity(gateway.url)
    answer = httpx.post(
        f"{gateway.url}/projects/demo/runs", json={"prompt": "x", "provider": "nope"}
    )
    assert answer.status_code == 422
    assert httpx.get(f"{gateway.url}/queue").json() == []
    for holder in holders:
        cancel(gateway.url, holder)

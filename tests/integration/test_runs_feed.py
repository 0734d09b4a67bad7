"""`GET /runs` and `GET /events` (the runs feed) across projects, scoped to the caller's
key, on every backend; over real HTTP with the fake claude CLI."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from tests.integration.helpers import read_stream
from tests.integration.test_auth import write_keys

KEYS = [
    ("ops", "ops-key", ["*"], "run"),
    ("team-a", "a-key", ["alpha"], "read"),
]
BACKENDS = ["memory", "redis", "postgres"]


def backend_settings(request: pytest.FixtureRequest, backend: str) -> dict[str, Any]:
    if backend == "redis":
        return {"event_backend": "redis", "redis_url": request.getfixturevalue("redis_server").url}
    if backend == "postgres":
        return {"database_url": request.getfixturevalue("database_url")}
    return {}


@pytest.fixture(params=BACKENDS)
def gateway(request, start_gateway, tmp_path):
    keys_file = tmp_path / "keys.json"
    write_keys(keys_file, *KEYS)
    settings = backend_settings(request, request.param)
    return start_gateway(api_keys_file=keys_file, stream_token_secret="s", **settings)


def get(server, path: str, key: str, **params: Any) -> Any:
    response = httpx.get(f"{server.url}{path}", headers={"X-API-Key": key}, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def start(server, project: str, prompt: str = "hello") -> dict[str, Any]:
    response = httpx.post(
        f"{server.url}/projects/{project}/runs",
        headers={"X-API-Key": "ops-key"},
        json={"prompt": prompt},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    return response.json()


def finish(server, started: dict[str, Any]) -> None:
    with httpx.Client(base_url=server.url, headers={"X-API-Key": "ops-key"}, timeout=30) as c:
        with connect_sse(c, "GET", started["stream_url"]) as source:
            for sse in source.iter_sse():
                if sse.event == "done":
                    return


class FeedReader(threading.Thread):
    """Reads `GET /events` in the background until `until(events)` holds."""

    def __init__(self, server, key: str, until, last_event_id: int | None = None) -> None:
        super().__init__(daemon=True)
        self.events: list[tuple[int, str, dict[str, Any]]] = []
        self.opened = threading.Event()
        self._server, self._key, self._until = server, key, until
        self._headers = {"X-API-Key": key}
        if last_event_id is not None:
            self._headers["Last-Event-ID"] = str(last_event_id)
        self.start()
        assert self.opened.wait(10), "the feed did not open"

    def run(self) -> None:
        with (
            httpx.Client(base_url=self._server.url, timeout=30) as client,
            connect_sse(client, "GET", "/events", headers=self._headers) as source,
        ):
            assert source.response.status_code == 200
            self.opened.set()
            for sse in source.iter_sse():
                if sse.data:
                    self.events.append((int(sse.id), sse.event, json.loads(sse.data)))
                    if self._until(self.events):
                        return

    def statuses(self, run_id: str) -> list[str]:
        return [data["status"] for _, _, data in self.events if data["run_id"] == run_id]


def finished(run_ids: set[str]):
    def until(events) -> bool:
        done = {data["run_id"] for _, _, data in events if data["finished_at"] is not None}
        return run_ids <= done

    return until


def test_runs_lists_the_callers_projects_newest_first_with_filters(gateway):
    runs = [start(gateway, project) for project in ("alpha", "beta", "alpha")]
    for started in runs:
        finish(gateway, started)
    slow = start(gateway, "beta", "slow listing")
    everything = get(gateway, "/runs", "ops-key")
    assert [r["run_id"] for r in everything] == [slow["run_id"]] + [
        r["run_id"] for r in reversed(runs)
    ]
    assert [r["run_id"] for r in get(gateway, "/runs", "ops-key", status="running")] == [
        slow["run_id"]
    ]
    assert [r["project_id"] for r in get(gateway, "/runs", "ops-key", project="alpha")] == [
        "alpha",
        "alpha",
    ]
    assert len(get(gateway, "/runs", "ops-key", limit=2)) == 2
    # a key of project alpha sees alpha's runs only, whatever it asks for
    assert {r["project_id"] for r in get(gateway, "/runs", "a-key")} == {"alpha"}
    assert get(gateway, "/runs", "a-key", project="beta") == []
    assert get(gateway, "/runs", "a-key", status="running") == []
    bad = httpx.get(f"{gateway.url}/runs?status=sleeping", headers={"X-API-Key": "ops-key"})
    assert bad.status_code == 422
    assert httpx.get(f"{gateway.url}/runs").status_code == 401
    httpx.post(f"{gateway.url}{slow['cancel_url']}", headers={"X-API-Key": "ops-key"}, timeout=30)


def test_the_feed_tells_each_status_change_of_the_callers_runs_only(gateway):
    everything = FeedReader(gateway, "ops-key", until=lambda events: False)
    mine_only = FeedReader(gateway, "a-key", until=lambda events: False)
    alpha, beta = start(gateway, "alpha"), start(gateway, "beta")
    reader = FeedReader(gateway, "ops-key", until=finished({alpha["run_id"], beta["run_id"]}))
    reader.join(30)
    assert not reader.is_alive()
    # it opened after both started: their `running` records came first, then the ends
    assert reader.statuses(alpha["run_id"])[-1] == "succeeded"
    ids = [seq for seq, _, _ in reader.events]
    assert ids == sorted(set(ids)) and all(event == "run" for _, event, _ in reader.events)
    record = reader.events[-1][2]
    assert record == get(
        gateway, f"/projects/{record['project_id']}/runs/{record['run_id']}", "ops-key"
    ) | {"stream_url": None}
    for started in (alpha, beta):
        finish(gateway, started)
    for feed in (everything, mine_only):
        feed.join(0.5)
    assert everything.statuses(alpha["run_id"]) == ["running", "succeeded"]
    assert everything.statuses(beta["run_id"]) == ["running", "succeeded"]
    assert {data["project_id"] for _, _, data in mine_only.events} == {"alpha"}
    assert mine_only.statuses(alpha["run_id"]) == ["running", "succeeded"]


def test_the_feed_resumes_after_last_event_id(gateway):
    first = start(gateway, "alpha")
    seen = FeedReader(gateway, "ops-key", until=finished({first["run_id"]}), last_event_id=0)
    seen.join(30)
    last = seen.events[-1][0]
    second = start(gateway, "beta")
    rest = FeedReader(gateway, "ops-key", until=finished({second["run_id"]}), last_event_id=last)
    rest.join(30)
    assert not rest.is_alive()
    assert all(seq > last for seq, _, _ in rest.events)
    assert {data["run_id"] for _, _, data in rest.events} == {second["run_id"]}, [
        (seq, data["run_id"][:6], data["status"], data["finished_at"], data["error"])
        for seq, _, data in seen.events + rest.events
    ]
    assert read_stream(gateway.url, first["stream_url"])[-1][1] == "done"


def test_a_list_says_where_to_follow_the_feed_from_so_its_history_is_not_sent_again(gateway):
    first = start(gateway, "alpha")
    finish(gateway, first)
    response = httpx.get(f"{gateway.url}/runs", headers={"X-API-Key": "ops-key"})
    listed_at = int(response.headers["Feed-Last-Event-ID"])
    assert listed_at > 0 and [r["run_id"] for r in response.json()] == [first["run_id"]]
    second = start(gateway, "beta")
    rest = FeedReader(
        gateway, "ops-key", until=finished({second["run_id"]}), last_event_id=listed_at
    )
    rest.join(30)
    assert not rest.is_alive()
    assert {data["run_id"] for _, _, data in rest.events} == {second["run_id"]}

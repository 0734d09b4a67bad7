"""API keys scoped to projects, roles, and signed stream URLs, over real HTTP."""

from __future__ import annotations

import hashlib
import json
import time

import httpx
import pytest

from domain.access import StreamTokens
from tests.integration.helpers import read_stream

SECRET = "test-stream-secret"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def write_keys(path, *entries) -> None:
    keys = [
        {"name": name, "sha256": sha(key), "projects": projects, "role": role}
        for name, key, projects, role in entries
    ]
    path.write_text(json.dumps({"keys": keys}))


KEYS = [
    ("ci", "ci-key", ["demo"], "run"),
    ("dashboard", "dash-key", ["*"], "read"),
    ("other", "other-key", ["other"], "run"),
]


@pytest.fixture
def gateway(start_gateway, tmp_path):
    keys_file = tmp_path / "keys.json"
    write_keys(keys_file, *KEYS)
    server = start_gateway(api_keys_file=keys_file, stream_token_secret=SECRET)
    server.keys_file = keys_file
    return server


def call(server, method, path, key=None, **kwargs):
    headers = {"X-API-Key": key} if key else {}
    return httpx.request(method, f"{server.url}{path}", headers=headers, timeout=30, **kwargs)


def start(server, key="ci-key", project="demo", prompt="hello"):
    response = call(server, "POST", f"/projects/{project}/claude", key, json={"prompt": prompt})
    assert response.status_code == 202, response.text
    return response.json()


def routes(started):
    return [
        ("POST", "/projects/demo/claude", {"json": {"prompt": "x"}}),
        ("POST", "/projects/demo/runs", {"json": {"prompt": "x"}}),
        ("GET", f"/projects/demo/events/{started['stream_id']}", {}),
        ("GET", "/projects/demo/runs", {}),
        ("GET", f"/projects/demo/runs/{started['run_id']}", {}),
        ("POST", f"/projects/demo/runs/{started['run_id']}/cancel", {}),
        ("GET", "/providers", {}),
        ("GET", "/readyz", {}),
        ("GET", "/metrics", {}),
        ("GET", "/openapi.json", {}),
    ]


def test_every_route_but_healthz_needs_a_valid_key(gateway):
    started = start(gateway)
    for method, path, kwargs in routes(started):
        for key in (None, "wrong-key"):
            response = call(gateway, method, path, key, **kwargs)
            assert response.status_code == 401, (method, path, key)
            assert response.json()["error"]["code"] == "unauthenticated"
    assert call(gateway, "GET", "/healthz").status_code == 200


def test_bearer_and_x_api_key_both_work(gateway):
    assert call(gateway, "GET", "/providers", "ci-key").status_code == 200
    bearer = {"Authorization": "Bearer dash-key"}
    assert httpx.get(f"{gateway.url}/providers", headers=bearer).status_code == 200


def test_another_projects_key_gets_404_for_its_runs_and_streams(gateway):
    started = start(gateway)
    for method, path, kwargs in routes(started)[:6]:
        response = call(gateway, method, path, "other-key", **kwargs)
        assert response.status_code == 404, (method, path)


def test_a_read_key_reads_but_cannot_start_or_cancel(gateway):
    started = start(gateway)
    response = call(gateway, "POST", "/projects/demo/claude", "dash-key", json={"prompt": "x"})
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    cancel = call(gateway, "POST", f"/projects/demo/runs/{started['run_id']}/cancel", "dash-key")
    assert cancel.status_code == 403
    assert call(gateway, "GET", f"/projects/demo/runs/{started['run_id']}", "dash-key").is_success
    assert call(gateway, "GET", "/projects/demo/runs", "dash-key").is_success


def test_the_stream_url_carries_a_token_that_reads_that_stream_only(gateway):
    started = start(gateway)
    other = start(gateway, prompt="second")
    assert "?token=" in started["stream_url"]
    events = read_stream(gateway.url, started["stream_url"])  # no key
    assert events[-1][1] == "done"
    token = started["stream_url"].split("?token=")[1]
    foreign = f"/projects/demo/events/{other['stream_id']}?token={token}"
    assert call(gateway, "GET", foreign).status_code == 401
    run_path = f"/projects/demo/runs/{started['run_id']}?token={token}"
    assert call(gateway, "GET", run_path).status_code == 401


def test_expired_and_forged_tokens_are_refused(gateway):
    started = start(gateway)
    path = f"/projects/demo/events/{started['stream_id']}"
    expired = StreamTokens(SECRET.encode(), ttl_s=-10).issue("demo", started["stream_id"])
    forged = StreamTokens(b"guess", ttl_s=600).issue("demo", started["stream_id"])
    for token in (expired, forged, "1.2", ""):
        assert call(gateway, "GET", f"{path}?token={token}").status_code == 401


def test_keys_are_reloaded_when_the_file_changes(gateway):
    assert call(gateway, "GET", "/providers", "new-key").status_code == 401
    write_keys(gateway.keys_file, *KEYS, ("new", "new-key", ["*"], "read"))
    deadline = time.monotonic() + 10
    while call(gateway, "GET", "/providers", "new-key").status_code != 200:
        assert time.monotonic() < deadline, "the new key was not picked up"
        time.sleep(0.2)
    # A broken file keeps the keys loaded: tests/unit/test_keys_file.py, on a fake clock.


def test_requests_past_a_keys_rate_get_429_and_other_keys_are_not_affected(start_gateway, tmp_path):
    keys_file = tmp_path / "keys.json"
    write_keys(keys_file, *KEYS)
    server = start_gateway(api_keys_file=keys_file, rate_limit_per_s=0.5, rate_limit_burst=3)
    answers = [call(server, "GET", "/providers", "ci-key") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "limit_exceeded"
    assert refused.headers["retry-after"] == "2"  # one token at 0.5/s
    assert call(server, "GET", "/providers", "dash-key").status_code == 200
    assert call(server, "GET", "/healthz").status_code == 200  # probes are never limited

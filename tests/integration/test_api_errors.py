"""Every 4xx/5xx of the contract, with its error body, and the read-only routes."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from tests.integration.helpers import read_stream, start_run


@pytest.fixture
def url(start_gateway) -> str:
    return start_gateway().url


METRICS = [
    "active_runs",
    "runs_started",
    "runs_finished",
    "run_duration_seconds",
    "cancels",
    "cancel_stop_seconds",
    "upstream_errors",
    "events_published",
    "events_delivered",
    "sse_subscribers",
    "slow_subscriber_disconnects",
]


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert "Traceback" not in body["error"]["message"]
    return body["error"]


@pytest.mark.parametrize(
    "project",
    ["Demo", "-demo", "demo-", "a" * 64, "dé", "demo_x", "demo.x"],
)
def test_invalid_project_ids_are_422(url, project):
    response = httpx.post(f"{url}/projects/{project}/claude", json={"prompt": "hi"})
    assert _error(response, 422)["code"] == "invalid_request"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "hi", "timeout_s": 0}, "timeout_s"),
        ({"prompt": "hi", "timeout_s": 86_401}, "timeout_s"),
        ({"prompt": "hi", "surprise": 1}, "surprise"),
        ({"prompt": "hi", "metadata": {"a": 1}}, "metadata"),
        ({"prompt": "x" * (1024 * 1024 + 1)}, "prompt"),
    ],
)
def test_invalid_bodies_are_422_naming_the_field(url, body, field):
    response = httpx.post(f"{url}/projects/demo/runs", json=body, timeout=30)
    assert field in _error(response, 422)["message"]


def test_a_prompt_of_exactly_one_mib_is_accepted(url):
    response = httpx.post(f"{url}/projects/demo/runs", json={"prompt": "x" * 1024 * 1024})
    assert response.status_code == 202


def test_unknown_provider_is_422_listing_the_known_ones(url):
    response = httpx.post(f"{url}/projects/demo/runs", json={"prompt": "hi", "provider": "nope"})
    error = _error(response, 422)
    assert error["code"] == "unknown_provider" and "claude-code" in error["message"]


def test_unknown_run_and_stream_are_404(url):
    assert _error(httpx.get(f"{url}/projects/demo/runs/nope"), 404)["code"] == "run_not_found"
    response = httpx.post(f"{url}/projects/demo/runs/nope/cancel")
    assert _error(response, 404)["code"] == "run_not_found"
    response = httpx.get(f"{url}/projects/demo/events/nope")
    assert _error(response, 404)["code"] == "stream_not_found"


def test_another_projects_run_and_stream_are_404(url):
    started = start_run(url, project="alpha")
    read_stream(url, started["stream_url"])
    assert httpx.get(f"{url}/projects/beta/runs/{started['run_id']}").status_code == 404
    assert httpx.get(f"{url}/projects/beta/events/{started['stream_id']}").status_code == 404
    assert httpx.post(f"{url}/projects/beta/runs/{started['run_id']}/cancel").status_code == 404


def test_bad_last_event_id_is_422(url):
    started = start_run(url)
    response = httpx.get(f"{url}{started['stream_url']}", headers={"Last-Event-ID": "abc"})
    assert _error(response, 422)["code"] == "invalid_request"


def test_missing_agent_binary_is_503_saying_what_to_install(start_gateway):
    server = start_gateway(claude_command="/nonexistent/claude")
    response = httpx.post(f"{server.url}/projects/demo/claude", json={"prompt": "hi"})
    error = _error(response, 503)
    assert error["code"] == "provider_unavailable"
    assert "npm install" in error["message"] and "AGENT_GATEWAY_CLAUDE_COMMAND" in error["message"]
    providers = httpx.get(f"{server.url}/providers").json()
    assert providers[0]["available"] is False
    assert httpx.get(f"{server.url}/readyz").status_code == 503


def test_providers_health_metrics_and_openapi(url):
    providers = httpx.get(f"{url}/providers").json()
    assert providers == [
        {
            "name": "claude-code",
            "default": True,
            "available": True,
            "detail": providers[0]["detail"],
            "capabilities": {
                "streaming": True,
                "resume": True,
                "cancel": True,
                "token_usage": True,
                "models": [],
            },
        }
    ]
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{url}/readyz").status_code == 200
    read_stream(url, start_run(url)["stream_url"])
    metrics = httpx.get(f"{url}/metrics").text
    assert (
        'agent_gateway_runs_finished_total{provider="claude-code",status="succeeded"} 1.0'
        in metrics
    )
    paths = httpx.get(f"{url}/openapi.json").json()["paths"]
    assert "/projects/{project_id}/claude" in paths
    assert "/projects/{project_id}/runs/{run_id}/cancel" in paths


def test_runs_are_listed_newest_first(url):
    ids = [start_run(url, prompt=f"run {i}")["run_id"] for i in range(3)]
    listed = [run["run_id"] for run in httpx.get(f"{url}/projects/demo/runs").json()]
    assert listed == ids[::-1]
    assert httpx.get(f"{url}/projects/other/runs").json() == []


def test_a_body_over_the_limit_is_413_by_length_or_while_streaming(start_gateway):
    server = start_gateway(max_body_bytes=4096)
    big = {"prompt": "x" * 5000}
    response = httpx.post(f"{server.url}/projects/demo/runs", json=big)
    assert _error(response, 413)["code"] == "payload_too_large"

    def chunks():  # no Content-Length: the limit applies while reading
        yield b'{"prompt": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'

    response = httpx.post(
        f"{server.url}/projects/demo/runs",
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert _error(response, 413)["code"] == "payload_too_large"


def test_runs_over_the_project_limit_wait_and_without_a_queue_are_429(start_gateway):
    server = start_gateway(max_runs_per_project=2, max_queued=0)
    started = [
        httpx.post(f"{server.url}/projects/demo/runs", json={"prompt": "slow x"}) for _ in range(2)
    ]
    response = httpx.post(f"{server.url}/projects/demo/runs", json={"prompt": "slow x"})
    assert _error(response, 429)["code"] == "limit_exceeded"
    assert response.headers["retry-after"] == "30"
    other = httpx.post(f"{server.url}/projects/other/runs", json={"prompt": "hi"})
    assert other.status_code == 202  # another project is not affected
    assert other.json()["status"] == "running"
    for run in started:
        httpx.post(f"{server.url}{run.json()['cancel_url']}", timeout=30)
    assert httpx.post(f"{server.url}/projects/demo/runs", json={"prompt": "hi"}).is_success


def test_subscribers_past_the_per_stream_limit_are_429(start_gateway):
    server = start_gateway(max_subscribers_per_stream=2)
    started = start_run(server.url, prompt="slow x")
    stream = f"{server.url}{started['stream_url']}"
    with httpx.Client(timeout=30) as client:
        with client.stream("GET", stream) as one, client.stream("GET", stream) as two:
            assert one.status_code == two.status_code == 200
            response = httpx.get(stream)
            assert _error(response, 429)["code"] == "limit_exceeded"
            assert response.headers["retry-after"] == "5"
        # both closed: a new subscriber gets in
        httpx.post(f"{server.url}{started['cancel_url']}", timeout=30)
        read_stream(server.url, started["stream_url"])


def _raw_request(port: int, head: bytes, body: bytes) -> bytes:
    """Sends a request whose body never completes and returns whatever the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize(
    "head",
    [
        b"Content-Length: 1000\r\n",  # announces more than it sends
        b"Transfer-Encoding: chunked\r\n",  # a chunked body with no last chunk
    ],
)
def test_a_body_that_never_ends_is_cut_off_with_408(start_gateway, head):
    server = start_gateway(body_timeout_s=0.5)
    request = (
        b"POST /projects/demo/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + head
        + b"\r\n"
    )
    body = b'{"prompt": "' if b"Length" in head else b'c\r\n{"prompt": "\r\n'
    started = time.monotonic()
    answer = _raw_request(server.port, request, body)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"request_timeout"' in answer
    assert time.monotonic() - started < 5  # and the connection was closed


def test_405_lists_every_method_of_the_path(url):
    response = httpx.request("OPTIONS", f"{url}/projects/demo/runs")
    assert _error(response, 405)["code"] == "method_not_allowed"
    assert response.headers["allow"] == "GET, POST"  # two routes share this path


def test_the_claude_route_refuses_another_provider(url):
    response = httpx.post(f"{url}/projects/demo/claude", json={"prompt": "x", "provider": "a"})
    assert "provider" in _error(response, 422)["message"]
    assert httpx.post(
        f"{url}/projects/demo/claude", json={"prompt": "x", "provider": "claude-code"}
    ).is_success

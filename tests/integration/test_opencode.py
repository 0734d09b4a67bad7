"""The OpenCode provider against the real `opencode serve` and a fake OpenAI-compatible API."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from tests.fakes.fake_openai import PROMPT_TOKENS
from tests.fakes.opencode_server import VERSION, OpenCodeServer
from tests.integration.helpers import read_stream, texts, wait_until


@pytest.fixture
def gateway(start_gateway, opencode):
    return start_gateway(providers="opencode,claude-code", opencode_url=opencode.url)


def run(url: str, prompt: str, **body) -> dict:
    response = httpx.post(f"{url}/projects/demo/runs", json={"prompt": prompt, **body}, timeout=30)
    assert response.status_code == 202, response.text
    return response.json()


def test_streamed_text_tokens_and_session(gateway):
    started = run(gateway.url, "hello there")
    assert started["provider"] == "opencode"
    events = read_stream(gateway.url, started["stream_url"])
    deltas = [d["content"] for _, n, d in events if n == "output" and d["type"] == "text"]
    assert deltas == ["Hello ", "from ", "fake. ", "You said: ", "hello there"]
    done = events[-1][2]
    assert done["status"] == "succeeded" and done["exit_code"] is None
    assert done["result"] == "Hello from fake. You said: hello there"
    assert done["input_tokens"] == PROMPT_TOKENS and done["output_tokens"] == 5
    assert done["session_id"].startswith("ses_") and done["provider"] == "opencode"


def test_tool_call_round_trip(gateway):
    events = read_stream(gateway.url, run(gateway.url, "please [tool] now")["stream_url"])
    tool_use = next(d for _, _, d in events if d.get("type") == "tool_use")
    tool_result = next(d for _, _, d in events if d.get("type") == "tool_result")
    assert tool_use["tool"] == "bash" and tool_use["input"]["command"] == "echo tool-ran"
    assert tool_result["content"].strip() == "tool-ran" and tool_result["is_error"] is False
    assert texts(events) == "tool said: tool-ran"
    assert events[-1][2]["status"] == "succeeded"


def test_a_session_continues_with_its_history(gateway, fake_api):
    fake, _ = fake_api
    first = read_stream(gateway.url, run(gateway.url, "first turn")["stream_url"])
    session_id = first[-1][2]["session_id"]
    second = read_stream(
        gateway.url, run(gateway.url, "second turn", session_id=session_id)["stream_url"]
    )
    assert second[-1][2]["session_id"] == session_id
    history = str(fake.requests[-1]["messages"])
    assert "first turn" in history and "second turn" in history


def test_cancel_aborts_a_slow_stream(gateway):
    started = run(gateway.url, "be [slow] please")
    with httpx.stream("GET", f"{gateway.url}{started['stream_url']}", timeout=30) as response:
        for line in response.iter_lines():
            if "word1 " in line:
                break
    began = time.monotonic()
    record = httpx.post(f"{gateway.url}{started['cancel_url']}", timeout=30).json()
    assert record["status"] == "cancelled"
    assert time.monotonic() - began < 5
    events = read_stream(gateway.url, started["stream_url"])
    assert events[-1][2]["status"] == "cancelled"
    assert texts(events).startswith("word0 word1 ")


def test_an_upstream_error_fails_the_run_with_its_message(gateway):
    events = read_stream(gateway.url, run(gateway.url, "please [fail]")["stream_url"])
    assert events[-1][2]["status"] == "failed"
    assert any(name == "error" for _, name, _ in events)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_server_is_503_and_a_chain_moves_on(start_gateway):
    server = start_gateway(
        providers="opencode,claude-code", opencode_url=f"http://127.0.0.1:{_closed_port()}"
    )
    response = httpx.post(
        f"{server.url}/projects/demo/runs", json={"prompt": "x", "provider": "opencode"}
    )
    assert response.status_code == 503 and "OpenCode" in response.json()["error"]["message"]
    chained = run(server.url, "hello chain", provider=["opencode", "claude-code"])
    assert chained["provider"] == "claude-code"
    record = httpx.get(f"{server.url}/projects/demo/runs/{chained['run_id']}").json()
    assert record["providers_skipped"][0].startswith("opencode: ")


def test_providers_lists_the_servers_models(gateway):
    def opencode() -> dict:
        providers = httpx.get(f"{gateway.url}/providers").json()
        return next(p for p in providers if p["name"] == "opencode")

    wait_until(lambda: VERSION in opencode()["detail"])  # probed in the background
    assert opencode()["available"] is True
    assert "fake/fake-model" in opencode()["capabilities"]["models"]


def test_fifty_runs_leave_no_upstream_connection_open(gateway, opencode):
    before = opencode.established_connections()
    for i in range(50):
        started = run(gateway.url, f"run {i}")
        if i % 10 == 0:  # some cancelled mid-way, the rest run to the end
            httpx.post(f"{gateway.url}{started['cancel_url']}", timeout=30)
        assert read_stream(gateway.url, started["stream_url"])[-1][1] == "done"
    wait_until(lambda: opencode.established_connections() <= before, timeout=10)


def test_a_dropped_upstream_event_stream_is_reconnected_once(start_gateway, opencode, caplog):
    from tests.fakes.servers import FlakyProxy

    # Cuts the first event stream, 4000 bytes after its response began.
    proxy = FlakyProxy(opencode.port, cut_after=4000, drops=1, marker=b"text/event-stream")
    server = start_gateway(providers="opencode", opencode_url=proxy.url)
    started = run(server.url, "be [slow] please")
    with httpx.stream("GET", f"{server.url}{started['stream_url']}", timeout=30) as response:
        for line in response.iter_lines():
            if "word6 " in line:  # words still arrive after the cut
                break
    assert "event stream dropped" in caplog.text
    record = httpx.post(f"{server.url}{started['cancel_url']}", timeout=30).json()
    assert record["status"] == "cancelled"
    proxy.close()


def test_a_password_protected_server(start_gateway, fake_api, tmp_path):
    with OpenCodeServer(tmp_path / "secured", fake_api[1], password="s3cret") as secured:
        assert httpx.get(f"{secured.url}/global/health").status_code == 401
        server = start_gateway(
            providers="opencode", opencode_url=secured.url, opencode_password="s3cret"
        )
        events = read_stream(server.url, run(server.url, "hello secured")["stream_url"])
        assert events[-1][2]["status"] == "succeeded"
        wrong = start_gateway(
            providers="opencode", opencode_url=secured.url, opencode_password="wrong"
        )
        response = httpx.post(f"{wrong.url}/projects/demo/runs", json={"prompt": "x"})
        assert response.status_code == 503 and "401" in response.text

"""The whole app under real uvicorn, with the fake claude script as the agent."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
from httpx_sse import connect_sse

from tests.conftest import process_alive
from tests.integration.helpers import (
    follow_with_resume,
    read_stream,
    start_run,
    texts,
    wait_for_file,
    wait_until,
)


def test_start_answers_202_and_the_stream_ends_with_done(start_gateway):
    server = start_gateway()
    started = start_run(server.url, prompt="hello there")
    assert started["stream_url"] == f"/projects/demo/events/{started['stream_id']}"
    assert started["cancel_url"] == f"/projects/demo/runs/{started['run_id']}/cancel"
    assert started["provider"] == "claude-code" and started["status"] == "running"

    events = read_stream(server.url, started["stream_url"])

    assert [seq for seq, _, _ in events] == list(range(1, len(events) + 1))
    assert [name for _, name, _ in events].count("done") == 1
    _, name, done = events[-1]
    assert name == "done"
    assert done["status"] == "succeeded" and done["exit_code"] == 0
    assert done["input_tokens"] == 11 and done["output_tokens"] == 7
    assert done["cost_usd"] == pytest.approx(0.0012)
    assert texts(events) == "You said: hello there"  # the assistant copy is not repeated
    record = httpx.get(f"{server.url}/projects/demo/runs/{started['run_id']}").json()
    assert record["status"] == "succeeded" and record["session_id"] == done["session_id"]
    assert record["finished_at"] is not None


def test_late_subscriber_sees_the_same_sequence_as_an_early_one(start_gateway):
    server = start_gateway()
    started = start_run(server.url, prompt="lines 300")
    early: list = []
    reader = threading.Thread(
        target=lambda: early.extend(read_stream(server.url, started["stream_url"]))
    )
    reader.start()
    time.sleep(0.05)
    late = read_stream(server.url, started["stream_url"])
    reader.join(30)
    assert late == early
    assert len(late) > 300


def test_resume_after_last_event_id_by_header_and_by_query(start_gateway):
    server = start_gateway()
    started = start_run(server.url, prompt="lines 20")
    everything = read_stream(server.url, started["stream_url"])
    by_header = read_stream(server.url, started["stream_url"], {"Last-Event-ID": "10"})
    by_query = read_stream(server.url, started["stream_url"] + "?last_event_id=10")
    assert by_header == everything[10:]
    assert by_query == everything[10:]


def test_crash_mid_stream_gives_done_failed_with_the_exit_code(start_gateway):
    server = start_gateway()
    events = read_stream(server.url, start_run(server.url, prompt="crash now")["stream_url"])
    assert texts(events) == "about to crash"
    assert events[-1][1] == "done"
    assert events[-1][2]["status"] == "failed" and events[-1][2]["exit_code"] == 1


def test_malformed_lines_become_unparsed_events_verbatim(start_gateway):
    server = start_gateway()
    events = read_stream(server.url, start_run(server.url, prompt="malformed x")["stream_url"])
    unparsed = [data["content"] for _, _, data in events if data.get("type") == "unparsed"]
    assert unparsed == ["this is not json", '{"type": "assistant", "message": 5}', "[1,2]"]
    assert events[-1][2]["status"] == "succeeded"


def test_stderr_lines_become_stderr_events(start_gateway):
    server = start_gateway()
    events = read_stream(server.url, start_run(server.url, prompt="stderr x")["stream_url"])
    stderr = [data["content"] for _, _, data in events if data.get("type") == "stderr"]
    assert stderr == ["warning one", "warning two"]


def test_hostile_prompt_reaches_the_agent_byte_for_byte(start_gateway):
    server = start_gateway()
    prompt = "it's \"quoted\" $(rm -rf /) `id` ; echo $HOME && \\n\nnew line\r\n tab\t ünïcødé 🙂 '"
    events = read_stream(server.url, start_run(server.url, prompt=prompt)["stream_url"])
    assert events[-1][2]["status"] == "succeeded"
    received = (server.workspace / "demo" / "received_prompt.bin").read_bytes()
    assert received == prompt.encode()


def test_cancel_kills_the_process_group_and_the_children_that_left_it(start_gateway):
    server = start_gateway()
    started = start_run(server.url, prompt="children please")
    pids = wait_for_file(server.workspace / "demo" / "children.pids").split()
    assert all(process_alive(int(pid)) for pid in pids)

    response = httpx.post(f"{server.url}{started['cancel_url']}", timeout=30)

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert not any(process_alive(int(pid)) for pid in pids)
    events = read_stream(server.url, started["stream_url"])
    assert events[-1][1] == "done" and events[-1][2]["status"] == "cancelled"
    again = httpx.post(f"{server.url}{started['cancel_url']}", timeout=30)
    assert again.status_code == 200 and again.json() == response.json()


def test_cancel_escalates_to_kill_for_an_agent_that_ignores_signals(start_gateway):
    server = start_gateway(interrupt_grace_s=0.3, terminate_grace_s=0.3)
    started = start_run(server.url, prompt="stubborn one")
    wait_until(lambda: (server.workspace / "demo" / "received_prompt.bin").exists())
    time.sleep(0.3)  # let it install its signal handlers
    began = time.monotonic()
    response = httpx.post(f"{server.url}{started['cancel_url']}", timeout=30)
    assert response.json()["status"] == "cancelled"
    assert time.monotonic() - began < 5
    assert response.json()["exit_code"] == 137  # SIGKILL


def test_timeout_gives_done_timed_out(start_gateway):
    server = start_gateway()
    started = start_run(server.url, prompt="slow and steady", timeout_s=1)
    events = read_stream(server.url, started["stream_url"])
    assert events[-1][2]["status"] == "timed_out"
    assert 1000 <= events[-1][2]["duration_ms"] < 10_000


def test_streaming_post_sends_the_run_event_first_then_the_stream(start_gateway):
    server = start_gateway()
    with (
        httpx.Client(base_url=server.url, timeout=30) as client,
        connect_sse(client, "POST", "/projects/demo/runs", json={"prompt": "lines 3"}) as source,
    ):
        assert source.response.status_code == 200
        events = list(source.iter_sse())
    assert events[0].event == "run" and events[0].id == ""
    assert events[0].json()["provider"] == "claude-code"
    assert events[-1].event == "done"
    assert [e.id for e in events[1:]] == [str(i) for i in range(1, len(events))]


def _streaming_post_then_drop(url: str, query: str = "") -> dict:
    with (
        httpx.Client(base_url=url, timeout=30) as client,
        connect_sse(
            client, "POST", f"/projects/demo/runs{query}", json={"prompt": "slow run"}
        ) as source,
    ):
        events = source.iter_sse()
        run = next(events).json()
        next(events)  # some output
    return run


def test_dropping_a_streaming_post_does_not_cancel_the_run(start_gateway):
    server = start_gateway()
    run = _streaming_post_then_drop(server.url)
    time.sleep(0.5)
    record = httpx.get(f"{server.url}/projects/demo/runs/{run['run_id']}").json()
    assert record["status"] == "running"
    httpx.post(f"{server.url}{run['cancel_url']}", timeout=30)


def test_dropping_a_streaming_post_cancels_when_asked(start_gateway):
    server = start_gateway()
    run = _streaming_post_then_drop(server.url, "?cancel_on_disconnect=true")

    def cancelled() -> bool:
        record = httpx.get(f"{server.url}/projects/demo/runs/{run['run_id']}").json()
        return record["status"] == "cancelled"

    wait_until(cancelled)


def test_stream_headers_and_pings_while_idle(start_gateway):
    server = start_gateway(ping_interval_s=0.2)
    started = start_run(server.url, prompt="children wait")  # quiet once started
    seen = b""
    with httpx.stream("GET", f"{server.url}{started['stream_url']}", timeout=10) as response:
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in response.headers
        for chunk in response.iter_bytes():
            seen += chunk
            if b": ping\n" in seen:
                break
    httpx.post(f"{server.url}{started['cancel_url']}", timeout=30)
    assert b": ping\n\n" in seen


def test_a_frozen_subscriber_is_cut_off_and_does_not_delay_another(start_gateway):
    # Default retention: a reader that gets dropped resumes without a gap.
    server = start_gateway(subscriber_max_pending=1000, send_timeout_s=1.0)
    started = start_run(server.url, prompt="children wait")  # a run that outlives the test
    frozen = socket.socket()
    frozen.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    frozen.connect(("127.0.0.1", server.port))
    flood = start_run(server.url, prompt="lines 20000 1 1000")  # 20 MB, after 1 s
    frozen.sendall(f"GET {flood['stream_url']} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    frozen.recv(100)  # the response has started: it is subscribed
    began = time.monotonic()

    live, _ = follow_with_resume(server.url, flood["stream_url"])

    assert time.monotonic() - began < 30
    assert [seq for seq, _, _ in live] == list(range(1, len(live) + 1))
    assert live[-1][1] == "done" and len(live) > 20000
    frozen.settimeout(20)
    received = b""
    while chunk := frozen.recv(65536):  # ends when the gateway hangs up on it
        received += chunk
    assert b"event: done" not in received
    frozen.close()
    metrics = httpx.get(f"{server.url}/metrics").text
    assert "agent_gateway_slow_subscriber_disconnects_total 0.0" not in metrics
    httpx.post(f"{server.url}{started['cancel_url']}", timeout=30)


def test_processes_left_running_by_the_agent_die_with_the_run(start_gateway):
    server = start_gateway()
    started = start_run(server.url, prompt="children then cancel")
    pids = wait_for_file(server.workspace / "demo" / "children.pids").split()
    httpx.post(f"{server.url}{started['cancel_url']}", timeout=30)
    assert not any(process_alive(int(pid)) for pid in pids)

"""The agent-gateway command: run and follow against a real gateway; serve and its settings."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from handlers.cli import main
from handlers.client import StreamFollower
from handlers.settings import SettingsError, load_settings
from tests.conftest import process_alive, processes_working_in
from tests.fakes.servers import FlakyProxy
from tests.integration.helpers import (
    GatewayProcess,
    read_stream,
    serve_flags,
    start_run,
    wait_for_file,
)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "handlers.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_run_prints_output_and_exits_0_on_success(start_gateway):
    server = start_gateway()
    result = run_cli("run", "demo", "hello cli", "--url", server.url)
    assert result.returncode == 0, result.stderr
    assert "You said: hello cli" in result.stdout
    assert "[done] status=succeeded" in result.stdout


def test_run_exits_with_the_agent_exit_code_on_failure(start_gateway):
    server = start_gateway()
    result = run_cli("run", "demo", "crash please", "--url", server.url)
    assert result.returncode == 1
    assert "status=failed" in result.stdout


def test_run_reports_http_errors(start_gateway):
    server = start_gateway()
    result = run_cli("run", "Bad_Project", "hi", "--url", server.url)
    assert result.returncode != 0 and "422" in result.stderr


def test_follow_resumes_with_last_event_id_after_dropped_connections(start_gateway):
    server = start_gateway()
    started = start_run(server.url, prompt="lines 500")
    expected = read_stream(server.url, started["stream_url"])
    proxy = FlakyProxy(server.port, cut_after=6000, drops=3)
    out = io.StringIO()
    with httpx.Client(base_url=proxy.url, timeout=30) as client:
        done = StreamFollower(client, started["stream_url"], out=out).follow()
    proxy.close()
    assert done["status"] == "succeeded"
    assert proxy.connections == 4
    printed = out.getvalue()
    for i in range(500):  # every line exactly once, in order
        assert printed.count(f"line {i}\n") == 1
    assert printed.index("line 10\n") < printed.index("line 400\n")
    assert expected[-1][1] == "done"


def test_unknown_and_invalid_settings_name_the_variable(monkeypatch):
    monkeypatch.setenv("AGENT_GATEWAY_PROT", "1")
    with pytest.raises(SettingsError, match="AGENT_GATEWAY_PROT"):
        load_settings()
    monkeypatch.delenv("AGENT_GATEWAY_PROT")
    monkeypatch.setenv("AGENT_GATEWAY_PORT", "eighty")
    with pytest.raises(SettingsError, match="AGENT_GATEWAY_PORT"):
        load_settings()
    monkeypatch.setenv("AGENT_GATEWAY_PORT", "8081")
    monkeypatch.setenv("AGENT_GATEWAY_RUNNER", "docker")
    with pytest.raises(SettingsError, match="AGENT_GATEWAY_RUNNER"):
        load_settings()
    monkeypatch.delenv("AGENT_GATEWAY_RUNNER")
    assert load_settings(port="9000").port == 9000  # a flag wins over the environment


def test_retention_must_leave_a_cut_subscriber_room_to_resume(monkeypatch):
    monkeypatch.setenv("AGENT_GATEWAY_SUBSCRIBER_MAX_PENDING", "60000")
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert "AGENT_GATEWAY_RETAIN_EVENTS (100000) must be at least twice" in str(refused.value)
    assert "AGENT_GATEWAY_SUBSCRIBER_MAX_PENDING (60000)" in str(refused.value)
    assert load_settings(retain_events="120000").retain_events == 120_000


def test_serve_refuses_a_non_loopback_address_without_auth(capsys):
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert "AGENT_GATEWAY_HOST" in capsys.readouterr().err


def test_sigterm_stops_every_agent_publishes_done_and_then_exits(tmp_path: Path):
    gateway = GatewayProcess(
        *serve_flags(tmp_path, "--interrupt-grace-s", "1", "--terminate-grace-s", "1")
    )
    url = gateway.url
    try:
        runs = [start_run(url, project=f"p{i}", prompt="children wait") for i in range(2)]
        runs.append(start_run(url, project="p2", prompt="stubborn wait"))
        pids = [
            int(pid)
            for i in range(2)
            for pid in wait_for_file(tmp_path / f"p{i}" / "children.pids").split()
        ]
        wait_for_file(tmp_path / "p2" / "received_prompt.bin")
        time.sleep(0.3)
        followed: list = []
        follower = threading.Thread(
            target=lambda: followed.extend(read_stream(url, runs[0]["stream_url"]))
        )
        follower.start()
        time.sleep(0.2)

        gateway.terminate()

        follower.join(30)
        assert followed[-1][1] == "done"
        assert followed[-1][2]["status"] == "cancelled"
        assert "shutting down" in followed[-1][2]["error"]
        gateway.process.wait(30)
    finally:
        gateway.stop()
    assert not [pid for pid in pids if process_alive(pid)]
    assert processes_working_in(tmp_path) == []


def test_serve_closes_connections_that_never_finish_a_request_head(tmp_path: Path):
    gateway = GatewayProcess(*serve_flags(tmp_path / "workspaces"), "--head-timeout-s", "1")
    try:
        partial = socket.create_connection(("127.0.0.1", gateway.port))
        partial.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never the blank line
        idle = socket.create_connection(("127.0.0.1", gateway.port))  # sends nothing
        began = time.monotonic()
        for sock in (partial, idle):
            sock.settimeout(10)
            assert sock.recv(100) == b""  # closed by the gateway
            sock.close()
        assert time.monotonic() - began < 5
        # A request that completed its head is not cut, however long its response lasts.
        started = start_run(gateway.url, prompt="slow x")
        with httpx.stream("GET", f"{gateway.url}{started['stream_url']}", timeout=10) as stream:
            began = time.monotonic()
            for _ in stream.iter_bytes():
                if time.monotonic() - began > 2.5:
                    break
        assert time.monotonic() - began > 2.5
        httpx.post(f"{gateway.url}{started['cancel_url']}", timeout=30)
    finally:
        gateway.stop()


def test_json_logs_name_the_run_and_project_on_every_line_of_a_run(tmp_path: Path):
    log_path = tmp_path / "gateway.log"
    gateway = GatewayProcess(
        *serve_flags(tmp_path / "workspaces"), "--log-format", "json", log_path=log_path
    )
    try:
        started = start_run(gateway.url, project="logs", prompt="slow x")
        httpx.post(f"{gateway.url}{started['cancel_url']}", timeout=30)
    finally:
        gateway.terminate()
        gateway.process.wait(30)
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]  # all JSON
    assert {"time", "level", "logger", "message", "run_id", "project_id"} <= set(lines[0])
    run_lines = [line for line in lines if line["run_id"] == started["run_id"]]
    messages = [line["message"] for line in run_lines]
    assert any(m.startswith("run started") for m in messages)
    assert any(m.startswith("stopping the agent") for m in messages)
    assert any(m.startswith("run finished: cancelled") for m in messages)
    assert {line["project_id"] for line in run_lines} == {"logs"}
    # Lines that mention the run elsewhere (the access log of its cancel) are not unnamed
    # run lines: every line that carries the run id in its message is bound to it.
    for line in lines:
        if started["run_id"] in line["message"] and line["logger"] != "uvicorn.access":
            assert line["run_id"] == started["run_id"], line


def test_keys_and_stream_tokens_never_reach_the_log(tmp_path: Path):
    key = "a-secret-api-key-0123456789"
    keys_file = tmp_path / "keys.json"
    entry = {"name": "ci", "sha256": hashlib.sha256(key.encode()).hexdigest()}
    keys_file.write_text(json.dumps({"keys": [{**entry, "projects": ["*"], "role": "run"}]}))
    log_path = tmp_path / "gateway.log"
    flags = [*serve_flags(tmp_path / "workspaces"), "--api-keys-file", str(keys_file)]
    gateway = GatewayProcess(*flags, "--log-level", "debug", log_path=log_path)
    try:
        headers = {"X-API-Key": key}
        started = httpx.post(
            f"{gateway.url}/projects/demo/runs", json={"prompt": "hi"}, headers=headers
        ).json()
        token = started["stream_url"].partition("token=")[2]
        assert token
        read_stream(gateway.url, started["stream_url"])  # with the token only
        httpx.get(f"{gateway.url}/providers", headers={"Authorization": f"Bearer {key}"})
        httpx.get(f"{gateway.url}/providers", headers={"X-API-Key": key + "-wrong"})
    finally:
        gateway.terminate()
        gateway.process.wait(30)
    log = log_path.read_text()
    assert "GET /projects/demo/events/" in log and "token=<redacted>" in log
    assert key not in log and token not in log

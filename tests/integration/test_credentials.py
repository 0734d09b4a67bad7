"""Per-project credentials over real HTTP: the admin role and the API, injection into the
agent (the fake claude CLI writes a hash of what it got), and redaction of every way the
agent prints the value, in events, replays, records, metrics and the gateway's log."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from domain.redaction import forms_of
from tests.integration.helpers import GatewayProcess, read_stream, serve_flags
from tests.integration.test_auth import write_keys

VALUE = "ghp_s3cret/Value+with=symbols&more"
KEYS = [
    ("owner", "owner-key", ["demo"], "admin"),
    ("ci", "ci-key", ["demo"], "run"),
    ("stranger", "stranger-key", ["other"], "admin"),
]
ADMIN = {"X-API-Key": "owner-key"}
RUNNER = {"X-API-Key": "ci-key"}
STRANGER = {"X-API-Key": "stranger-key"}


@pytest.fixture
def gateway(start_gateway, tmp_path):
    keys_file = tmp_path / "keys.json"
    write_keys(keys_file, *KEYS)
    return start_gateway(api_keys_file=keys_file)


def put(url: str, name: str, body: dict, headers: dict) -> httpx.Response:
    return httpx.put(f"{url}/projects/demo/credentials/{name}", json=body, headers=headers)


def leaks(text: str) -> list[str]:
    """The forms of VALUE found in `text`."""
    return [form for form in forms_of(VALUE) if form in text]


def test_the_admin_role_stores_lists_and_deletes_and_values_never_come_back(gateway):
    url = gateway.url
    stored = put(url, "GH_TOKEN", {"value": VALUE}, ADMIN)
    assert stored.status_code == 200, stored.text
    info = stored.json()
    assert info["name"] == "GH_TOKEN" and info["env"] == "GH_TOKEN"
    assert info["fingerprint"].startswith("hmac-sha256:") and not leaks(stored.text)
    again = put(url, "GH_TOKEN", {"value": VALUE + "-2", "env": "GITHUB_TOKEN"}, ADMIN).json()
    assert again["created_at"] == info["created_at"] and again["env"] == "GITHUB_TOKEN"
    assert again["fingerprint"] != info["fingerprint"]
    listed = httpx.get(f"{url}/projects/demo/credentials", headers=ADMIN)
    assert [c["name"] for c in listed.json()] == ["GH_TOKEN"] and not leaks(listed.text)

    assert put(url, "X_TOKEN", {"value": VALUE}, RUNNER).status_code == 403
    assert httpx.get(f"{url}/projects/demo/credentials", headers=RUNNER).status_code == 403
    assert httpx.get(f"{url}/projects/demo/credentials", headers=STRANGER).status_code == 404
    assert put(url, "X_TOKEN", {"value": VALUE}, STRANGER).status_code == 404

    for name, body in [
        ("1BAD", {"value": VALUE}),
        ("SHORT", {"value": "abc"}),
        ("HOME_DIR", {"value": VALUE, "env": "HOME"}),
        ("CLI_STATE", {"value": VALUE, "env": "CLAUDE_CONFIG_DIR"}),
        ("EXTRA", {"value": VALUE, "colour": "red"}),
        ("BAD_ENV", {"value": VALUE, "env": "not-a-name"}),
    ]:
        response = put(url, name, body, ADMIN)
        assert response.status_code == 422, (name, response.text)

    gone = httpx.delete(f"{url}/projects/demo/credentials/GH_TOKEN", headers=ADMIN)
    assert gone.status_code == 204
    again_gone = httpx.delete(f"{url}/projects/demo/credentials/GH_TOKEN", headers=ADMIN)
    assert again_gone.status_code == 404
    assert httpx.get(f"{url}/projects/demo/credentials", headers=ADMIN).json() == []


def test_the_agent_gets_the_value_and_nothing_that_leaves_the_gateway_shows_it(tmp_path: Path):
    keys_file = tmp_path / "keys.json"
    write_keys(keys_file, *KEYS)
    log_path = tmp_path / "gateway.log"
    workspace = tmp_path / "workspaces"
    flags = [*serve_flags(workspace), "--api-keys-file", str(keys_file), "--log-level", "debug"]
    gateway = GatewayProcess(*flags, log_path=log_path)
    try:
        url = gateway.url
        assert put(url, "GH_TOKEN", {"value": VALUE}, ADMIN).status_code == 200
        started = httpx.post(
            f"{url}/projects/demo/runs", json={"prompt": "leak GH_TOKEN"}, headers=RUNNER
        ).json()
        with httpx.stream("GET", f"{url}{started['stream_url']}", timeout=30) as response:
            wire = response.read().decode()  # the stream as it went out, byte for byte
        replay = read_stream(url, started["stream_url"])
        record = httpx.get(f"{url}/projects/demo/runs/{started['run_id']}", headers=RUNNER)
        metrics = httpx.get(f"{url}/metrics", headers=RUNNER).text
    finally:
        gateway.terminate()
        gateway.process.wait(30)

    # The agent had the right value in its environment.
    leaked = (workspace / "demo" / "leaked.sha256").read_text()
    assert leaked == hashlib.sha256(VALUE.encode()).hexdigest()
    # What went out: every way it printed the value is masked, nothing else is lost.
    assert not leaks(wire) and VALUE not in wire
    for encoded in (base64.b64encode(VALUE.encode()).decode(), quote(VALUE, safe="")):
        assert encoded not in wire
    events = [(name, data) for _, name, data in replay]
    texts = "".join(d["content"] for n, d in events if n == "output" and d["type"] == "text")
    for cut in range(len(VALUE) + 1):
        assert f"[{cut}] *** " in texts, cut
    assert "whole ***." in texts and " percent ***" in texts
    stderr = [d["content"] for n, d in events if n == "output" and d["type"] == "stderr"]
    assert stderr == ["stderr says ***"]
    tool = next(d for n, d in events if n == "output" and d["type"] == "tool_result")
    assert tool["content"] == "env: X=***"
    done = events[-1][1]
    assert done["status"] == "succeeded" and done["result"] == "done with ***"
    assert not leaks(json.dumps(replay))
    assert record.json()["credentials"] == ["GH_TOKEN"] and not leaks(record.text)
    redactions = next(
        line for line in metrics.splitlines() if line.startswith("agent_gateway_redactions_total")
    )
    assert float(redactions.split()[-1]) >= len(VALUE) + 7 and not leaks(metrics)
    assert not leaks(log_path.read_text())


def test_a_run_that_requires_a_missing_credential_is_422_at_start(gateway):
    assert put(gateway.url, "GH_TOKEN", {"value": VALUE}, ADMIN).status_code == 200
    runs = f"{gateway.url}/projects/demo/runs"
    body = {"prompt": "hi", "credentials": ["GH_TOKEN", "NPM_TOKEN"]}
    missing = httpx.post(runs, json=body, headers=RUNNER)
    assert missing.status_code == 422 and "NPM_TOKEN" in missing.text
    assert "GH_TOKEN" not in missing.json()["error"]["message"]
    started = httpx.post(runs, json={"prompt": "hi", "credentials": ["GH_TOKEN"]}, headers=RUNNER)
    assert started.status_code == 202, started.text


def test_a_persistent_backend_without_a_key_ring_refuses_to_store(start_gateway, redis_server):
    server = start_gateway(event_backend="redis", redis_url=redis_server.url)
    response = put(server.url, "GH_TOKEN", {"value": VALUE}, {})
    assert response.status_code == 503
    assert "AGENT_GATEWAY_CREDENTIAL_KEYS" in response.json()["error"]["message"]


def test_in_a_pod_the_value_travels_on_stdin_and_nowhere_the_api_server_logs(
    start_gateway, fake_kube
):
    server = start_gateway(runner="kubernetes", interrupt_grace_s=1, terminate_grace_s=1)
    assert put(server.url, "GH_TOKEN", {"value": VALUE}, {}).status_code == 200
    started = httpx.post(f"{server.url}/projects/demo/runs", json={"prompt": "leak GH_TOKEN"})
    events = read_stream(server.url, started.json()["stream_url"])
    assert events[-1][2]["status"] == "succeeded"
    leaked = (fake_kube.workdir / "leaked.sha256").read_text()
    assert leaked == hashlib.sha256(VALUE.encode()).hexdigest()  # in the agent's environment
    assert not leaks(json.dumps(events))
    command = fake_kube.execs[0]  # the argv `ps` in the pod shows
    assert command[0] == "env" and "sh" in command and not leaks(json.dumps(command))
    assert fake_kube.requests and not leaks(json.dumps(fake_kube.requests))
    assert any("/exec?" in request for request in fake_kube.requests)


def key_ring(*ids: str) -> str:
    return ",".join(f"{i}:{base64.b64encode(i.encode() * (32 // len(i))).decode()}" for i in ids)


def test_postgres_keeps_credentials_across_restarts_and_rotation(start_gateway, database_url):
    first = start_gateway(database_url=database_url, credential_keys=key_ring("k1"))
    assert put(first.url, "GH_TOKEN", {"value": VALUE}, {}).status_code == 200
    first.__exit__(None, None, None)

    rotate = subprocess.run(
        [sys.executable, "-m", "handlers.cli", "credentials", "rotate"],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("AGENT_GATEWAY_")},
            "AGENT_GATEWAY_DATABASE_URL": database_url,
            "AGENT_GATEWAY_CREDENTIAL_KEYS": key_ring("k2", "k1"),
            "AGENT_GATEWAY_PROVIDERS": "claude-code",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rotate.returncode == 0, rotate.stderr
    assert "re-encrypted 1 credential" in rotate.stderr

    after = start_gateway(database_url=database_url, credential_keys=key_ring("k2"))
    listed = httpx.get(f"{after.url}/projects/demo/credentials").json()
    assert [c["name"] for c in listed] == ["GH_TOKEN"]
    started = httpx.post(f"{after.url}/projects/demo/runs", json={"prompt": "leak GH_TOKEN"})
    assert started.status_code == 202, started.text
    events = read_stream(after.url, started.json()["stream_url"])
    assert events[-1][2]["status"] == "succeeded"
    leaked = (after.workspace / "demo" / "leaked.sha256").read_text()
    assert leaked == hashlib.sha256(VALUE.encode()).hexdigest()

    old_only = start_gateway(database_url=database_url, credential_keys=key_ring("k1"))
    refused = httpx.post(f"{old_only.url}/projects/demo/runs", json={"prompt": "hi"})
    assert refused.status_code == 503 and "not in the ring" in refused.text

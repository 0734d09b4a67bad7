"""The real Claude Code CLI (from the npm registry) through the gateway, against the fake
Messages API on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import CLAUDE_CLI
from tests.e2e.cli_env import point_the_cli_at
from tests.fakes.fake_anthropic import INPUT_TOKENS, FakeAnthropic
from tests.fakes.servers import RunningServer
from tests.integration.helpers import read_stream, start_run, texts

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True, scope="module")
def _claude_cli_installed() -> None:
    assert CLAUDE_CLI.exists(), (
        "the claude CLI is missing: `make test` installs it into tests/agents"
    )


@pytest.fixture
def fake_api() -> Iterator[tuple[FakeAnthropic, str]]:
    fake = FakeAnthropic()
    with RunningServer(fake.app) as server:
        yield fake, server.url


@pytest.fixture(params=["local", "kubernetes"])
def gateway(request, fake_api, monkeypatch, tmp_path: Path):
    """The gateway running the CLI as a local process, or in a "pod" of the fake API server."""
    return cli_gateway(request, request.param, fake_api, monkeypatch, tmp_path)


@pytest.fixture
def pod_gateway(request, fake_api, monkeypatch, tmp_path: Path):
    return cli_gateway(request, "kubernetes", fake_api, monkeypatch, tmp_path)


def cli_gateway(request, runner: str, fake_api, monkeypatch, tmp_path: Path):
    fake, api_url = fake_api
    home = Path(tempfile.mkdtemp(dir=tmp_path))
    point_the_cli_at(api_url, home, monkeypatch)
    pod = request.getfixturevalue("fake_kube") if runner == "kubernetes" else None
    server = request.getfixturevalue("start_gateway")(claude_command=str(CLAUDE_CLI), runner=runner)
    server.agent_dir = pod.workdir if pod else server.workspace / "demo"  # where it works
    server.cli_home = home  # where the CLI keeps its state (the pod's, with kubernetes)
    return server, fake


def test_streamed_text_and_usage(gateway):
    server, _ = gateway
    events = read_stream(server.url, start_run(server.url, prompt="Say hi")["stream_url"])
    assert texts(events) == "Hello from fake. You said: Say hi", events
    assert sum(1 for _, _, d in events if d.get("type") == "text") == 5  # token deltas
    done = events[-1][2]
    assert done["status"] == "succeeded" and done["exit_code"] == 0
    assert done["input_tokens"] == INPUT_TOKENS and done["output_tokens"] == 5
    assert done["session_id"] and done["result"] == texts(events)
    assert done["cost_usd"] is not None
    init = next(d for _, _, d in events if d.get("subtype") == "init")
    assert done["model"] and done["model"] == init["model"]  # as the CLI reported it


def test_tool_call_round_trip(gateway):
    server, _ = gateway
    events = read_stream(server.url, start_run(server.url, prompt="run [tool]")["stream_url"])
    tool_use = next(d for _, _, d in events if d.get("type") == "tool_use")
    tool_result = next(d for _, _, d in events if d.get("type") == "tool_result")
    assert tool_use["tool"] == "Bash" and tool_use["input"]["command"] == "echo tool-ran"
    assert tool_result["content"] == "tool-ran" and tool_result["tool_use_id"] == tool_use["id"]
    assert texts(events) == "tool said: tool-ran"
    assert events[-1][2]["input_tokens"] == 2 * INPUT_TOKENS  # summed over both turns


def test_resume_continues_the_session_with_its_history(gateway):
    server, fake = gateway
    first = read_stream(server.url, start_run(server.url, prompt="first turn")["stream_url"])
    session_id = first[-1][2]["session_id"]
    started = start_run(server.url, prompt="second turn", session_id=session_id)
    second = read_stream(server.url, started["stream_url"])
    assert second[-1][2]["status"] == "succeeded"
    assert second[-1][2]["session_id"] == session_id
    history = str(fake.requests[-1]["messages"])
    assert "first turn" in history and "second turn" in history


def test_a_session_goes_on_in_a_recycled_pod(pod_gateway):
    server, fake = pod_gateway
    first = read_stream(server.url, start_run(server.url, prompt="first turn")["stream_url"])
    session_id = first[-1][2]["session_id"]
    (kept,) = server.cli_home.glob(f".claude/projects/*/{session_id}.jsonl")
    # The pod is recycled: its disk starts empty (the CLI's state, the workspace).
    for state in (server.cli_home, server.agent_dir):
        shutil.rmtree(state)
        state.mkdir()
    started = start_run(server.url, prompt="second turn", session_id=session_id)
    second = read_stream(server.url, started["stream_url"])
    assert second[-1][2]["status"] == "succeeded", second
    assert second[-1][2]["session_id"] == session_id
    history = str(fake.requests[-1]["messages"])
    assert "first turn" in history and "second turn" in history
    assert kept.exists() and kept.stat().st_mode & 0o077 == 0  # put back, for its user only


def test_unknown_session_fails_with_the_cli_message(gateway):
    server, _ = gateway
    started = start_run(server.url, prompt="hi", session_id="00000000-0000-0000-0000-000000000000")
    events = read_stream(server.url, started["stream_url"])
    assert events[-1][2]["status"] == "failed"
    assert any("No conversation found" in d.get("content", "") for _, _, d in events)


def test_cancel_of_a_slow_run(gateway):
    server, _ = gateway
    started = start_run(server.url, prompt="please be [slow]")
    with httpx.stream("GET", f"{server.url}{started['stream_url']}", timeout=60) as response:
        for line in response.iter_lines():
            if "word2 " in line:
                break
    record = httpx.post(f"{server.url}{started['cancel_url']}", timeout=60).json()
    assert record["status"] == "cancelled"
    events = read_stream(server.url, started["stream_url"])
    assert events[-1][2]["status"] == "cancelled"
    assert texts(events).startswith("word0 word1 word2 ")


def test_a_credential_reaches_the_cli_and_never_comes_back(gateway):
    server, fake = gateway
    value = "glpat-Sup3r+S3cret/Value=42"
    stored = httpx.put(f"{server.url}/projects/demo/credentials/GL_TOKEN", json={"value": value})
    assert stored.status_code == 200, stored.text
    started = start_run(server.url, prompt="show [printenv GL_TOKEN]")
    events = read_stream(server.url, started["stream_url"])
    assert value not in json.dumps(events)
    tool_result = next(d for _, _, d in events if d.get("type") == "tool_result")
    assert tool_result["content"] == "***"
    assert texts(events) == "tool said: ***"  # the value came back three characters a delta
    assert events[-1][2]["status"] == "succeeded"
    record = httpx.get(f"{server.url}/projects/demo/runs/{started['run_id']}")
    assert record.json()["credentials"] == ["GL_TOKEN"] and value not in record.text
    # The CLI's process had the value: its tool wrote it, and the model was told it.
    assert (server.agent_dir / "leaked.txt").read_text() == value + "\n"
    assert value in json.dumps(fake.requests[-1])

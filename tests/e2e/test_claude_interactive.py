"""Interactive runs with the real Claude Code CLI (from the npm registry) on the local
runner, against the fake Messages API: the CLI's permission requests answered over the
API, follow-ups, interrupt, close, and the input and idle timeouts."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import CLAUDE_CLI, processes_working_in
from tests.e2e.cli_env import point_the_cli_at
from tests.fakes.fake_anthropic import INPUT_TOKENS, FakeAnthropic
from tests.fakes.servers import RunningServer
from tests.integration.helpers import Event, GatewayProcess, follow, post, turn_ends

pytestmark = pytest.mark.slow


@pytest.fixture
def gateway(start_gateway, monkeypatch, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    fake = FakeAnthropic()
    with RunningServer(fake.app) as api:
        point_the_cli_at(api.url, Path(tempfile.mkdtemp(dir=tmp_path)), monkeypatch)

        def start(**settings: Any) -> Any:
            return start_gateway(claude_command=str(CLAUDE_CLI), **settings)

        yield start


def start_interactive(url: str, prompt: str, **body: Any) -> dict[str, Any]:
    body = {"prompt": prompt, "interactive": True, "permission_mode": "default", **body}
    response = httpx.post(f"{url}/projects/demo/claude", json=body, timeout=30)
    assert response.status_code == 202, response.text
    return response.json()


def test_a_permission_allowed_over_the_api_lets_the_tool_run(gateway):
    server = gateway()
    run = start_interactive(server.url, "please run [touch]")
    runs = f"/projects/demo/runs/{run['run_id']}"
    made = server.workspace / "demo" / "made-by-agent"
    seen_record: list[dict[str, Any]] = []

    def act(event: Event) -> None:
        _, name, data = event
        if name == "input_request":
            record = httpx.get(f"{server.url}{runs}").json()
            seen_record.append(record)
            answer = post(
                server.url, f"{runs}/input", {"request_id": data["request_id"], "decision": "allow"}
            )
            assert answer.status_code == 200, answer.text
        if name == "output" and data["type"] == "turn_end":
            assert post(server.url, f"{runs}/close").status_code == 200

    events = follow(server.url, run, act)
    request = next(d for _, name, d in events if name == "input_request")
    assert (request["kind"], request["tool"]) == ("permission", "Bash")
    assert request["input"]["command"] == "touch made-by-agent"
    assert seen_record[0]["status"] == "waiting_input"
    assert seen_record[0]["pending_inputs"][0]["request_id"] == request["request_id"]
    resolved = next(d for _, name, d in events if name == "input_resolved")
    assert resolved == {"request_id": request["request_id"], "decision": "allow", "by": None}
    statuses = [d["status"] for _, name, d in events if name == "status"]
    assert statuses == ["waiting_input", "running"]
    assert made.exists()
    assert events[-1][1] == "done" and events[-1][2]["status"] == "succeeded"
    record = httpx.get(f"{server.url}{runs}").json()
    assert record["turns"] == 1 and record["pending_inputs"] == []


def test_a_denied_permission_keeps_the_tool_from_running_and_the_run_goes_on(gateway):
    server = gateway()
    run = start_interactive(server.url, "please run [touch]")
    runs = f"/projects/demo/runs/{run['run_id']}"

    def act(event: Event) -> None:
        _, name, data = event
        if name == "input_request":
            body = {"request_id": data["request_id"], "decision": "deny", "message": "not here"}
            assert post(server.url, f"{runs}/input", body).status_code == 200
            again = post(server.url, f"{runs}/input", body)  # already resolved
            assert again.status_code == 409
        if name == "output" and data["type"] == "turn_end":
            post(server.url, f"{runs}/close")

    events = follow(server.url, run, act)
    result = next(d for _, name, d in events if name == "output" and d["type"] == "tool_result")
    assert result["is_error"] is True
    assert not (server.workspace / "demo" / "made-by-agent").exists()
    assert turn_ends(events) and events[-1][2]["status"] == "succeeded"


def test_follow_ups_run_as_new_turns_of_the_same_session_and_done_totals_them(gateway):
    server = gateway()
    run = start_interactive(server.url, "first question")
    runs = f"/projects/demo/runs/{run['run_id']}"

    def act(event: Event) -> None:
        _, name, data = event
        if name == "output" and data["type"] == "turn_end":
            if data["turn"] == 1:
                sent = post(server.url, f"{runs}/input", {"message": "second question"})
                assert sent.status_code == 202
            else:
                post(server.url, f"{runs}/close")

    events = follow(server.url, run, act)
    ends = turn_ends(events)
    assert [end["turn"] for end in ends] == [1, 2]
    assert "You said: second question" in ends[1]["result"]
    done = events[-1][2]
    assert done["status"] == "succeeded"
    assert done["input_tokens"] == 2 * INPUT_TOKENS  # over both turns
    assert done["cost_usd"] == pytest.approx(sum(end["cost_usd"] for end in ends))
    assert httpx.get(f"{server.url}{runs}").json()["turns"] == 2


def test_an_interrupt_ends_the_turn_and_the_session_takes_the_next_message(gateway):
    server = gateway()
    run = start_interactive(server.url, "talk [slow]")
    runs = f"/projects/demo/runs/{run['run_id']}"
    state = {"texts": 0}

    def act(event: Event) -> None:
        _, name, data = event
        if name == "output" and data["type"] == "text":
            state["texts"] += 1
            if state["texts"] == 3:
                assert post(server.url, f"{runs}/interrupt").status_code == 200
        if name == "output" and data["type"] == "turn_end":
            if data["turn"] == 1:
                post(server.url, f"{runs}/input", {"message": "after the interrupt"})
            else:
                post(server.url, f"{runs}/close")

    events = follow(server.url, run, act)
    first, second = turn_ends(events)
    assert first["subtype"] == "error_during_execution"
    assert "You said: after the interrupt" in second["result"]
    assert events[-1][2]["status"] == "succeeded"


def test_an_unanswered_request_is_denied_after_the_input_timeout(gateway):
    server = gateway(input_timeout_s=1, idle_timeout_s=1)
    run = start_interactive(server.url, "please run [touch]")
    began = time.monotonic()
    events = follow(server.url, run, lambda event: None)  # nobody answers, nobody closes
    resolved = next(d for _, name, d in events if name == "input_resolved")
    assert resolved["decision"] == "timed_out"
    assert not (server.workspace / "demo" / "made-by-agent").exists()
    # ... and the idle run closes itself once its turn has ended
    assert events[-1][2]["status"] == "succeeded" and time.monotonic() - began < 30


def test_cancel_while_waiting_for_input_leaves_no_process(gateway):
    server = gateway()
    run = start_interactive(server.url, "please run [touch]")

    def act(event: Event) -> None:
        if event[1] == "input_request":
            cancelled = post(server.url, run["cancel_url"])
            assert cancelled.json()["status"] == "cancelled"

    events = follow(server.url, run, act)
    assert events[-1][2]["status"] == "cancelled"
    assert processes_working_in(server.workspace) == []


def test_a_run_that_is_not_interactive_takes_no_input(gateway):
    server = gateway()
    response = httpx.post(
        f"{server.url}/projects/demo/claude", json={"prompt": "talk [slow]"}, timeout=30
    )
    run = response.json()
    answer = post(server.url, f"/projects/demo/runs/{run['run_id']}/input", {"message": "hi"})
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "input_not_accepted"
    post(server.url, run["cancel_url"])


def test_a_question_answered_over_the_api_reaches_the_agent(gateway):
    server = gateway()
    run = start_interactive(server.url, "please [ask]")
    runs = f"/projects/demo/runs/{run['run_id']}"

    def act(event: Event) -> None:
        _, name, data = event
        if name == "input_request":
            question = data["questions"][0]["question"]
            body = {"request_id": data["request_id"], "decision": "allow"}
            body["answers"] = {question: "blue"}
            assert post(server.url, f"{runs}/input", body).status_code == 200
        if name == "output" and data["type"] == "turn_end":
            post(server.url, f"{runs}/close")

    events = follow(server.url, run, act)
    request = next(d for _, name, d in events if name == "input_request")
    assert (request["kind"], request["tool"]) == ("question", "AskUserQuestion")
    assert [o["label"] for o in request["questions"][0]["options"]] == ["red", "blue"]
    resolved = next(d for _, name, d in events if name == "input_resolved")
    assert resolved["decision"] == "answered"
    result = next(d for _, name, d in events if name == "output" and d["type"] == "tool_result")
    assert '"blue"' in result["content"]
    assert events[-1][2]["status"] == "succeeded"


def test_the_cli_answers_on_the_terminal_and_sends_follow_ups_from_stdin(gateway):
    server = gateway()
    argv = [sys.executable, "-m", "handlers.cli", "run", "demo", "please run [touch]"]
    argv += ["--interactive", "--permission-mode", "default", "--url", server.url]
    # allow the tool; one follow-up after the first turn; an empty line closes the run
    finished = subprocess.run(
        argv, input="y\nsecond question\n\n", capture_output=True, text=True, timeout=120
    )
    assert finished.returncode == 0, finished.stderr
    assert "[permission] Bash" in finished.stderr and "allow? [y/N]" in finished.stderr
    assert "You said: second question" in finished.stdout
    assert "[turn 2 ended]" in finished.stdout and "status=succeeded" in finished.stdout
    assert (server.workspace / "demo" / "made-by-agent").exists()


@pytest.mark.parametrize("backend", ["redis", "postgres"])
def test_input_sent_to_another_replica_reaches_the_run(backend, gateway, request, tmp_path):
    """Two gateway processes; the run lives on `a`, every request to it goes to `b`."""
    if backend == "redis":
        shared = [
            "--event-backend",
            "redis",
            "--redis-url",
            request.getfixturevalue("redis_server").url,
        ]
    else:
        shared = [
            "--event-backend",
            "postgres",
            "--database-url",
            request.getfixturevalue("database_url"),
        ]
    flags = ["--claude-command", str(CLAUDE_CLI), "--providers", "claude-code"]
    flags += ["--workspace-root", str(tmp_path / "workspaces"), *shared]
    a, b = GatewayProcess(*flags), GatewayProcess(*flags)
    try:
        run = start_interactive(a.url, "please run [touch]")
        runs = f"/projects/demo/runs/{run['run_id']}"

        def act(event: Event) -> None:
            _, name, data = event
            if name == "input_request":
                wrong = post(b.url, f"{runs}/input", {"request_id": "nope", "decision": "allow"})
                assert wrong.status_code == 409  # checked on b against the shared record
                body = {"request_id": data["request_id"], "decision": "allow"}
                assert post(b.url, f"{runs}/input", body).status_code == 200
            if name == "output" and data["type"] == "turn_end":
                if data["turn"] == 1:
                    assert post(b.url, f"{runs}/input", {"message": "more"}).status_code == 202
                else:
                    assert post(b.url, f"{runs}/close").status_code == 200

        events = follow(b.url, run, act)
        assert [end["turn"] for end in turn_ends(events)] == [1, 2]
        assert events[-1][2]["status"] == "succeeded"
        assert (tmp_path / "workspaces" / "demo" / "made-by-agent").exists()
    finally:
        a.stop()
        b.stop()


def test_on_the_kubernetes_runner_the_exec_keeps_stdin_open_for_answers_and_follow_ups(
    gateway, fake_kube
):
    """Through the exec API (the fake API server runs the CLI in its "pod" folder)."""
    server = gateway(runner="kubernetes")
    run = start_interactive(server.url, "please run [touch]")
    runs = f"/projects/demo/runs/{run['run_id']}"

    def act(event: Event) -> None:
        _, name, data = event
        if name == "input_request":
            body = {"request_id": data["request_id"], "decision": "allow"}
            assert post(server.url, f"{runs}/input", body).status_code == 200
        if name == "output" and data["type"] == "turn_end":
            if data["turn"] == 1:
                post(server.url, f"{runs}/input", {"message": "in the pod still"})
            else:
                post(server.url, f"{runs}/close")  # closes the exec's stdin: the CLI ends

    events = follow(server.url, run, act)
    assert [end["turn"] for end in turn_ends(events)] == [1, 2]
    assert "You said: in the pod still" in turn_ends(events)[1]["result"]
    assert (fake_kube.workdir / "made-by-agent").exists()
    assert events[-1][2]["status"] == "succeeded" and events[-1][2]["exit_code"] == 0


def test_cancel_of_an_interactive_run_in_a_pod_stops_it(gateway, fake_kube):
    server = gateway(runner="kubernetes")
    run = start_interactive(server.url, "please run [touch]")

    def act(event: Event) -> None:
        if event[1] == "input_request":
            assert post(server.url, run["cancel_url"]).json()["status"] == "cancelled"

    events = follow(server.url, run, act)
    assert events[-1][2]["status"] == "cancelled"
    assert processes_working_in(fake_kube.workdir) == []


def test_a_permission_request_is_a_run_input_requested_webhook(gateway):
    from tests.fakes.webhook_receiver import WebhookReceiver
    from tests.integration.helpers import wait_until

    receiver = WebhookReceiver()
    with RunningServer(receiver.app) as hook:
        server = gateway(webhook_allow_private=True)
        secret = {"value": "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ=="}
        assert httpx.put(f"{server.url}/projects/demo/credentials/HOOK", json=secret).is_success
        hooks = [{"url": f"{hook.url}/hook", "events": ["run.input_requested"], "secret": "HOOK"}]
        overrides = {"overrides": {"webhooks": hooks}}
        assert httpx.put(f"{server.url}/projects/demo", json=overrides).is_success
        run = start_interactive(server.url, "please run [touch]")
        runs = f"/projects/demo/runs/{run['run_id']}"

        def act(event: Event) -> None:
            _, name, data = event
            if name == "input_request":
                wait_until(lambda: len(receiver.received) == 1)
                body = {"request_id": data["request_id"], "decision": "allow"}
                assert post(server.url, f"{runs}/input", body).status_code == 200
            if name == "output" and data["type"] == "turn_end":
                assert post(server.url, f"{runs}/close").status_code == 200

        follow(server.url, run, act)
    delivered = json.loads(receiver.received[0]["body"])
    assert delivered["type"] == "run.input_requested"
    assert delivered["run"]["status"] == "waiting_input"
    assert delivered["run"]["pending_inputs"][0]["tool"] == "Bash"

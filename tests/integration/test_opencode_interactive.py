"""Interactive runs on the real `opencode serve` (from the npm registry) against the fake
OpenAI-compatible API: its permission requests and questions answered over the API,
follow-ups as new prompts in the same session, interrupt, close; and a non-interactive run
whose session asks is denied at once instead of waiting forever."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fakes.fake_openai import PROMPT_TOKENS, QUESTION
from tests.integration.helpers import Event, follow, post, read_stream, texts, turn_ends


@pytest.fixture
def gateway(start_gateway, opencode):
    return start_gateway(providers="opencode", opencode_url=opencode.url)


def start(url: str, prompt: str, **body: Any) -> dict[str, Any]:
    body = {"prompt": prompt, "interactive": True, **body}
    response = httpx.post(f"{url}/projects/demo/runs", json=body, timeout=30)
    assert response.status_code == 202, response.text
    return response.json()


def named(events: list[Event], wanted: str) -> list[dict[str, Any]]:
    return [d for _, name, d in events if name == wanted]


def test_an_allowed_permission_runs_the_tool_and_close_ends_the_run(gateway, opencode):
    made = opencode.project / "touched-by-agent"
    made.unlink(missing_ok=True)
    run = start(gateway.url, "please [touch]")
    runs = f"/projects/demo/runs/{run['run_id']}"
    records: list[dict[str, Any]] = []

    def act(event: Event) -> None:
        _, name, data = event
        if name == "input_request":
            records.append(httpx.get(f"{gateway.url}{runs}").json())
            body = {"request_id": data["request_id"], "decision": "allow"}
            assert post(gateway.url, f"{runs}/input", body).status_code == 200
        if name == "output" and data["type"] == "turn_end":
            assert post(gateway.url, f"{runs}/close").status_code == 200

    events = follow(gateway.url, run, act)
    request = named(events, "input_request")[0]
    assert (request["kind"], request["tool"]) == ("permission", "bash")
    assert request["input"]["command"] == "touch touched-by-agent"
    assert records[0]["status"] == "waiting_input"
    assert records[0]["pending_inputs"][0]["request_id"] == request["request_id"]
    assert named(events, "input_resolved") == [
        {"request_id": request["request_id"], "decision": "allow", "by": None}
    ]
    assert [d["status"] for d in named(events, "status")] == ["waiting_input", "running"]
    assert made.exists()
    (turn,) = turn_ends(events)
    assert turn["turn"] == 1 and turn["subtype"] == "success"
    assert turn["input_tokens"] == 2 * PROMPT_TOKENS  # a step for the call, one for the answer
    done = events[-1][2]
    assert done["status"] == "succeeded" and done["input_tokens"] == 2 * PROMPT_TOKENS
    record = httpx.get(f"{gateway.url}{runs}").json()
    assert record["turns"] == 1 and record["pending_inputs"] == []


def test_a_denied_permission_keeps_the_tool_from_running_and_the_run_goes_on(gateway):
    run = start(gateway.url, "please [tool]")
    runs = f"/projects/demo/runs/{run['run_id']}"

    def act(event: Event) -> None:
        _, name, data = event
        if name == "input_request":
            body = {"request_id": data["request_id"], "decision": "deny", "message": "not here"}
            assert post(gateway.url, f"{runs}/input", body).status_code == 200
            assert post(gateway.url, f"{runs}/input", body).status_code == 409  # resolved
        if name == "output" and data["type"] == "turn_end":
            assert post(gateway.url, f"{runs}/close").status_code == 200

    events = follow(gateway.url, run, act)
    result = next(d for d in named(events, "output") if d["type"] == "tool_result")
    assert result["is_error"] is True and "tool-ran" not in result["content"]
    assert named(events, "input_resolved")[0]["decision"] == "deny"
    assert texts(events).startswith("tool said:")  # the model heard of the refusal, went on
    assert events[-1][2]["status"] == "succeeded"


def test_a_question_is_answered_over_the_api(gateway, fake_api):
    run = start(gateway.url, "[ask] which one")
    runs = f"/projects/demo/runs/{run['run_id']}"

    def act(event: Event) -> None:
        _, name, data = event
        if name == "input_request":
            wrong = {"request_id": data["request_id"], "decision": "allow", "answers": {}}
            assert post(gateway.url, f"{runs}/input", wrong).status_code == 409
            body = {**wrong, "answers": {QUESTION["question"]: "blue"}}
            assert post(gateway.url, f"{runs}/input", body).status_code == 200
        if name == "output" and data["type"] == "turn_end":
            assert post(gateway.url, f"{runs}/close").status_code == 200

    events = follow(gateway.url, run, act)
    request = named(events, "input_request")[0]
    assert request["kind"] == "question" and request["questions"] == [QUESTION]
    assert named(events, "input_resolved")[0]["decision"] == "answered"
    assert "blue" in texts(events)  # the tool's result, as the fake model repeats it
    assert events[-1][2]["status"] == "succeeded"


def test_follow_ups_queued_and_now_are_turns_of_the_same_session(gateway, fake_api):
    fake, _ = fake_api
    run = start(gateway.url, "a [slow] first turn")
    runs = f"/projects/demo/runs/{run['run_id']}"
    sent: list[str] = []

    def act(event: Event) -> None:
        _, name, data = event
        if name == "output" and data["type"] == "text" and "word1 " in data["content"]:
            if not sent:  # the slow turn is under way: stop it, then a queued one after
                sent.append("now")
                body = {"message": "second turn", "when": "now"}
                assert post(gateway.url, f"{runs}/input", body).status_code == 202
                body = {"message": "third turn", "when": "queue"}
                assert post(gateway.url, f"{runs}/input", body).status_code == 202
        if name == "output" and data["type"] == "turn_end" and data["turn"] == 3:
            assert post(gateway.url, f"{runs}/close").status_code == 200

    events = follow(gateway.url, run, act)
    turns = turn_ends(events)
    assert [t["turn"] for t in turns] == [1, 2, 3]
    assert turns[0]["subtype"] == "interrupted"
    assert turns[1]["result"] == "Hello from fake. You said: second turn"
    assert turns[2]["result"] == "Hello from fake. You said: third turn"
    history = [m.get("content") for m in fake.requests[-1]["messages"]]
    assert "a [slow] first turn" in str(history) and "second turn" in str(history)
    done = events[-1][2]
    assert done["status"] == "succeeded"
    assert done["result"] == "Hello from fake. You said: third turn"
    assert turns[0]["input_tokens"] is None  # aborted before the model told its usage
    assert done["input_tokens"] == turns[1]["input_tokens"] + turns[2]["input_tokens"]
    assert httpx.get(f"{gateway.url}{runs}").json()["turns"] == 3


def test_an_interrupt_withdraws_the_pending_request_and_the_session_goes_on(gateway, opencode):
    run = start(gateway.url, "please [tool] then stop")
    runs = f"/projects/demo/runs/{run['run_id']}"

    def act(event: Event) -> None:
        _, name, data = event
        if name == "input_request":
            assert post(gateway.url, f"{runs}/interrupt").status_code == 200
        if name == "output" and data["type"] == "turn_end":
            if data["turn"] == 1:
                body = {"message": "after the interrupt"}
                assert post(gateway.url, f"{runs}/input", body).status_code == 202
            else:
                assert post(gateway.url, f"{runs}/close").status_code == 200

    events = follow(gateway.url, run, act)
    request = named(events, "input_request")[0]
    assert named(events, "input_resolved") == [
        {"request_id": request["request_id"], "decision": "withdrawn", "by": None}
    ]
    first, second = turn_ends(events)
    assert first["subtype"] == "interrupted"
    assert second["result"] == "Hello from fake. You said: after the interrupt"
    assert events[-1][2]["status"] == "succeeded"
    # The server lists no request of that session any more (its abort leaves them listed).
    session_id = events[-1][2]["session_id"]
    pending = httpx.get(f"{opencode.url}/permission").json()
    assert [p for p in pending if p["sessionID"] == session_id] == []


def test_cancel_while_waiting_for_an_answer(gateway, opencode):
    run = start(gateway.url, "please [tool] and wait")
    records: list[dict[str, Any]] = []

    def act(event: Event) -> None:
        if event[1] == "input_request":
            records.append(post(gateway.url, run["cancel_url"]).json())

    events = follow(gateway.url, run, act)
    assert records[0]["status"] == "cancelled"
    assert events[-1][2]["status"] == "cancelled"
    session_id = events[-1][2]["session_id"]
    statuses = httpx.get(f"{opencode.url}/session/status").json()
    assert statuses.get(session_id, {"type": "idle"})["type"] == "idle"
    pending = httpx.get(f"{opencode.url}/permission").json()
    assert [p for p in pending if p["sessionID"] == session_id] == []


def test_a_run_that_is_not_interactive_is_denied_at_once_when_its_session_asks(gateway):
    body = {"prompt": "please [tool]", "permission_mode": "default"}
    started = httpx.post(f"{gateway.url}/projects/demo/runs", json=body, timeout=30).json()
    events = read_stream(gateway.url, started["stream_url"])
    notice = next(d for d in named(events, "output") if d["type"] == "system")
    assert "nobody can answer" in notice["content"] and notice["tool"] == "bash"
    result = next(d for d in named(events, "output") if d["type"] == "tool_result")
    assert result["is_error"] is True
    assert named(events, "input_request") == []
    assert events[-1][2]["status"] == "succeeded"
    runs = f"/projects/demo/runs/{started['run_id']}"
    assert post(gateway.url, f"{runs}/input", {"message": "more"}).status_code == 409


def test_bypass_permissions_asks_nothing(gateway):
    run = start(gateway.url, "please [tool]", permission_mode="bypassPermissions")
    runs = f"/projects/demo/runs/{run['run_id']}"

    def act(event: Event) -> None:
        if event[1] == "output" and event[2]["type"] == "turn_end":
            assert post(gateway.url, f"{runs}/close").status_code == 200

    events = follow(gateway.url, run, act)
    assert named(events, "input_request") == []
    assert texts(events) == "tool said: tool-ran"

"""The Anthropic Messages API provider: the real SDK against the fake Messages API."""

from __future__ import annotations

import json

import httpx
import pytest
from httpx_sse import connect_sse

from tests.fakes.fake_anthropic import INPUT_TOKENS, FakeAnthropic
from tests.fakes.servers import RunningServer
from tests.integration.helpers import read_stream, texts


@pytest.fixture
def fake_api(monkeypatch):
    fake = FakeAnthropic()
    fake.delay_s = 0.05
    with RunningServer(fake.app) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)  # read by the SDK itself
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        yield fake


@pytest.fixture
def gateway(start_gateway, fake_api):
    return start_gateway(
        providers="anthropic,claude-code",
        anthropic_max_retries=0,
        anthropic_model="claude-test-model",
        anthropic_prices={"claude-test-model": (3.0, 15.0)},
    )


def run(url: str, prompt: str, project: str = "demo", expect: int = 202, **body) -> dict:
    response = httpx.post(
        f"{url}/projects/{project}/runs", json={"prompt": prompt, **body}, timeout=30
    )
    assert response.status_code == expect, response.text
    return response.json()


def test_text_streams_in_order_with_usage_model_and_cost(gateway):
    started = run(gateway.url, "Say hi")
    assert started["provider"] == "anthropic"
    events = read_stream(gateway.url, started["stream_url"])
    deltas = [d["content"] for _, n, d in events if n == "output"]
    assert deltas == ["Hello ", "from ", "fake. ", "You said: ", "Say hi"]
    done = events[-1][2]
    assert done["status"] == "succeeded" and done["result"] == "".join(deltas)
    assert done["input_tokens"] == INPUT_TOKENS and done["output_tokens"] == 5
    assert done["model"] == "claude-test-model"
    assert done["cost_usd"] == pytest.approx((INPUT_TOKENS * 3 + 5 * 15) / 1e6)


def test_a_session_sends_the_earlier_turns_as_history(gateway, fake_api):
    first = read_stream(gateway.url, run(gateway.url, "first turn")["stream_url"])
    session_id = first[-1][2]["session_id"]
    second = read_stream(
        gateway.url, run(gateway.url, "second turn", session_id=session_id)["stream_url"]
    )
    assert second[-1][2]["session_id"] == session_id
    assert fake_api.requests[-1]["messages"] == [
        {"role": "user", "content": "first turn"},
        {"role": "assistant", "content": "Hello from fake. You said: first turn"},
        {"role": "user", "content": "second turn"},
    ]


def test_another_projects_session_is_404(gateway):
    first = read_stream(gateway.url, run(gateway.url, "mine")["stream_url"])
    error = run(
        gateway.url, "theirs", project="other", expect=404, session_id=first[-1][2]["session_id"]
    )
    assert error["error"]["code"] == "session_not_found"


def test_overloaded_before_the_first_byte_falls_back_to_the_next_provider(gateway):
    started = run(gateway.url, "please [overloaded]", provider=["anthropic", "claude-code"])
    assert started["provider"] == "claude-code"
    record = httpx.get(f"{gateway.url}/projects/demo/runs/{started['run_id']}").json()
    assert record["provider"] == "claude-code"
    assert "529" in record["providers_skipped"][0]
    assert read_stream(gateway.url, started["stream_url"])[-1][2]["provider"] == "claude-code"
    alone = run(gateway.url, "please [overloaded]", provider="anthropic", expect=503)
    assert "Overloaded" in alone["error"]["message"]


def test_a_broken_stream_gives_error_with_partial_then_failed_and_keeps_the_partial(
    gateway, fake_api
):
    started = run(gateway.url, "please [break]", provider=["anthropic", "claude-code"])
    assert started["provider"] == "anthropic"  # output was seen: no fallback
    events = read_stream(gateway.url, started["stream_url"])
    error = next(d for _, n, d in events if n == "error")
    assert error["partial_content"] == "partial reply then "
    assert events[-1][2]["status"] == "failed"
    session_id = events[-1][2]["session_id"]
    read_stream(gateway.url, run(gateway.url, "go on", session_id=session_id)["stream_url"])
    assert fake_api.requests[-1]["messages"][1] == {
        "role": "assistant",
        "content": "partial reply then ",
    }


def test_cancel_of_a_streaming_answer(gateway):
    started = run(gateway.url, "be [slow]")
    with httpx.stream("GET", f"{gateway.url}{started['stream_url']}", timeout=30) as response:
        for line in response.iter_lines():
            if "word1 " in line:
                break
    record = httpx.post(f"{gateway.url}{started['cancel_url']}", timeout=30).json()
    assert record["status"] == "cancelled"
    events = read_stream(gateway.url, started["stream_url"])
    assert texts(events).startswith("word0 word1 ")
    assert not [n for _, n, _ in events if n == "error"]


def test_without_an_api_key_the_provider_is_unavailable(start_gateway, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    server = start_gateway(providers="anthropic")
    response = httpx.post(f"{server.url}/projects/demo/runs", json={"prompt": "x"})
    assert response.status_code == 503 and "ANTHROPIC_API_KEY" in response.text


def test_thinking_deltas_become_thinking_events(gateway):
    events = read_stream(gateway.url, run(gateway.url, "please [think]")["stream_url"])
    outputs = [(d["type"], d["content"]) for _, n, d in events if n == "output"]
    assert outputs == [("thinking", "Let me "), ("thinking", "think."), ("text", "Answer.")]
    assert events[-1][2]["result"] == "Answer."


def follow_interactive(url: str, started: dict, act) -> list:
    """Reads the stream to `done`, calling `act(name, data)` on each event as it comes."""
    events = []
    with httpx.Client(base_url=url, timeout=30) as client:
        with connect_sse(client, "GET", started["stream_url"]) as source:
            for sse in source.iter_sse():
                if sse.data:
                    data = json.loads(sse.data)
                    events.append((sse.event, data))
                    act(sse.event, data)
    return events


def test_an_interactive_run_takes_follow_ups_with_the_history_and_totals_them(gateway, fake_api):
    started = run(gateway.url, "first turn", provider="anthropic", interactive=True)
    runs = f"{gateway.url}/projects/demo/runs/{started['run_id']}"

    def act(name: str, data: dict) -> None:
        if name == "output" and data["type"] == "turn_end":
            if data["turn"] == 1:
                sent = httpx.post(f"{runs}/input", json={"message": "second turn"})
                assert sent.status_code == 202
                answer = {"request_id": "x", "decision": "allow"}  # it asks nothing
                assert httpx.post(f"{runs}/input", json=answer).status_code == 409
            else:
                assert httpx.post(f"{runs}/close").status_code == 200

    events = follow_interactive(gateway.url, started, act)
    ends = [d for name, d in events if name == "output" and d["type"] == "turn_end"]
    assert [e["turn"] for e in ends] == [1, 2]
    assert ends[1]["result"] == "Hello from fake. You said: second turn"
    assert fake_api.requests[-1]["messages"] == [
        {"role": "user", "content": "first turn"},
        {"role": "assistant", "content": "Hello from fake. You said: first turn"},
        {"role": "user", "content": "second turn"},
    ]
    done = events[-1][1]
    assert done["status"] == "succeeded" and done["input_tokens"] == 2 * INPUT_TOKENS
    assert done["cost_usd"] == pytest.approx(sum(e["cost_usd"] for e in ends))


def test_an_interrupt_ends_the_answer_and_the_next_message_continues_the_session(gateway):
    started = run(gateway.url, "talk [slow]", provider="anthropic", interactive=True)
    runs = f"{gateway.url}/projects/demo/runs/{started['run_id']}"
    state = {"texts": 0}

    def act(name: str, data: dict) -> None:
        if name == "output" and data["type"] == "text":
            state["texts"] += 1
            if state["texts"] == 3:
                assert httpx.post(f"{runs}/interrupt").status_code == 200
        if name == "output" and data["type"] == "turn_end":
            if data["turn"] == 1:
                httpx.post(f"{runs}/input", json={"message": "after it"})
            else:
                httpx.post(f"{runs}/close")

    events = follow_interactive(gateway.url, started, act)
    first, second = [d for name, d in events if name == "output" and d["type"] == "turn_end"]
    assert first["subtype"] == "interrupted" and second["result"].endswith("You said: after it")
    assert not [d for name, d in events if name == "error"]
    assert events[-1][1]["status"] == "succeeded"

"""`agent-gateway run` and `follow`: a client of the gateway's HTTP API and event streams."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from collections.abc import Mapping
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, SSEError, connect_sse

log = logging.getLogger("agent_gateway")
DEFAULT_URL = "http://127.0.0.1:8080"


class Terminal:
    """An interactive run's side of the conversation, on the terminal: each request of the
    agent is asked on stderr and answered from stdin; after each turn, the next line of
    stdin is the follow-up (an empty line or the end of input closes the run)."""

    def __init__(self, client: httpx.Client, run_path: str, answers: Any = sys.stdin) -> None:
        self._client = client
        self._run_path = run_path  # /projects/<p>/runs/<r>
        self._answers = answers

    def _ask(self, prompt: str) -> str:
        sys.stderr.write(prompt)
        sys.stderr.flush()
        return self._answers.readline().strip()

    def on_request(self, data: dict[str, Any]) -> None:
        body: dict[str, Any] = {"request_id": data["request_id"], "decision": "allow"}
        if data.get("kind") == "question":
            answers = {}
            for question in data.get("questions") or []:
                labels = [o.get("label") for o in question.get("options") or []]
                text = question.get("question", "")
                answers[text] = self._ask(f"[question] {text} {labels}: ")
            body["answers"] = answers
        else:
            summary = json.dumps(data.get("input"), ensure_ascii=False)[:200]
            reply = self._ask(f"[permission] {data.get('tool')} {summary} allow? [y/N] ")
            if reply.lower() not in ("y", "yes"):
                body = {"request_id": data["request_id"], "decision": "deny"}
        self._post("/input", body)

    def on_turn_end(self) -> None:
        message = self._ask("> ")
        if message:
            self._post("/input", {"message": message, "when": "queue"})
        else:
            self._post("/close", {})

    def _post(self, suffix: str, body: dict[str, Any]) -> None:
        response = self._client.post(self._run_path + suffix, json=body)
        if response.status_code >= 400:
            log.warning("%s", _http_error(response))


class StreamFollower:
    """Follows an event stream to `done`, resuming with Last-Event-ID after a drop."""

    def __init__(
        self,
        client: httpx.Client,
        url: str,
        max_retries: int = 8,
        out: Any = sys.stdout,
        terminal: Terminal | None = None,
    ) -> None:
        self._client = client
        self._url = url
        self._max_retries = max_retries
        self._out = out
        self._terminal = terminal
        self.last_id: str | None = None
        self.done: dict[str, Any] | None = None
        self._at_line_start = True

    def follow(self) -> dict[str, Any]:
        failures = 0
        while self.done is None:
            headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
            progressed = False
            try:
                with connect_sse(self._client, "GET", self._url, headers=headers) as source:
                    if source.response.status_code != 200:
                        source.response.read()
                        raise SystemExit(_http_error(source.response))
                    for event in source.iter_sse():
                        progressed = True
                        self._show(event)
                        if event.event == "done":
                            break
            except (httpx.TransportError, SSEError) as exc:
                log.debug("stream dropped: %s", exc)
            if self.done is not None:
                break
            failures = 0 if progressed else failures + 1
            if failures > self._max_retries:
                raise SystemExit(f"error: the stream dropped {failures} times; giving up")
            time.sleep(min(0.25 * 2**failures, 8.0))
        return self.done

    def _show(self, event: ServerSentEvent) -> None:
        if event.id:
            self.last_id = event.id
        data = json.loads(event.data) if event.data else {}
        if event.event == "output" and data.get("type") in ("text", "thinking"):
            self._write(data.get("content", ""))
        elif event.event == "output" and data.get("type") == "turn_end":
            self._line(f"[turn {data.get('turn')} ended]")
            if self._terminal is not None:
                self._terminal.on_turn_end()
        elif event.event == "input_request":
            if self._terminal is not None:
                self._terminal.on_request(data)
        elif event.event == "input_resolved":
            self._line(f"[{data.get('decision')}] {data.get('request_id')}")
        elif event.event == "output" and data.get("type") == "system":
            if data.get("subtype") == "init":  # status chatter stays out of the way
                self._line(f"[session] {data.get('session_id')} model {data.get('model')}")
        elif event.event == "output":
            self._line(f"[{data.get('type')}] {_summary(data)}")
        elif event.event == "error":
            self._line(f"[error] {data.get('message')}")
        elif event.event == "status":
            position = data.get("position")
            self._line(f"[{data.get('status')}]" + (f" position {position}" if position else ""))
        elif event.event == "gap":
            self._line(f"[gap] events before {data.get('first_available')} are gone")
        elif event.event == "done":
            self.done = data
            fields = ("status", "exit_code", "duration_ms", "input_tokens", "output_tokens")
            self._line("[done] " + " ".join(f"{k}={data.get(k)}" for k in fields))

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()
        if text:
            self._at_line_start = text.endswith("\n")

    def _line(self, text: str) -> None:
        self._write(("" if self._at_line_start else "\n") + text + "\n")


def _summary(data: dict[str, Any]) -> str:
    if data.get("type") == "tool_use":
        return f"{data.get('tool')} {json.dumps(data.get('input'), ensure_ascii=False)[:200]}"
    return str(data.get("content", ""))[:200]


def _http_error(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        return f"error: {response.status_code} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"error: HTTP {response.status_code}"


def _exit_code(done: dict[str, Any]) -> int:
    if done.get("status") == "succeeded":
        return 0
    code = done.get("exit_code")
    return code if isinstance(code, int) and 0 < code < 256 else 1


def _client(base_url: str, api_key: str | None) -> httpx.Client:
    headers = {"X-API-Key": api_key} if api_key else {}
    return httpx.Client(base_url=base_url, headers=headers, timeout=httpx.Timeout(10, read=60))


def run_command(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"prompt": args.prompt}
    if args.provider:
        body["provider"] = args.provider
    if args.interactive:
        body["interactive"] = True
    if args.permission_mode:
        body["permission_mode"] = args.permission_mode
    return _start_and_follow(args.url, args.api_key, args.project, body, args.interactive)


# What a Woodpecker step knows of its pipeline, recorded as the run's metadata.
CI_VARIABLES = (
    "CI_REPO",
    "CI_COMMIT_SHA",
    "CI_COMMIT_BRANCH",
    "CI_PIPELINE_NUMBER",
    "CI_PIPELINE_URL",
)


def ci_command(environ: Mapping[str, str]) -> int:
    """`agent-gateway ci`: a Woodpecker plugin step. Its settings arrive as PLUGIN_*
    variables (lists comma-separated), the pipeline's as CI_*; the run's output goes to the
    step's log as it happens, and the step exits with the run's code."""
    missing = [
        f"PLUGIN_{n}" for n in ("URL", "PROJECT", "PROMPT") if not environ.get(f"PLUGIN_{n}")
    ]
    if missing:
        raise SystemExit(
            f"error: set {', '.join(missing)} (the step's settings: url, project, prompt)"
        )
    body: dict[str, Any] = {"prompt": environ["PLUGIN_PROMPT"]}
    if environ.get("PLUGIN_PROVIDER"):
        body["provider"] = [p.strip() for p in environ["PLUGIN_PROVIDER"].split(",") if p.strip()]
    if environ.get("PLUGIN_TEMPLATE"):
        body["template"] = environ["PLUGIN_TEMPLATE"]
    if environ.get("PLUGIN_TIMEOUT"):
        try:
            body["timeout_s"] = int(environ["PLUGIN_TIMEOUT"])
        except ValueError:
            raise SystemExit("error: PLUGIN_TIMEOUT must be a number of seconds") from None
    metadata = {name: environ[name] for name in CI_VARIABLES if environ.get(name)}
    if metadata:
        body["metadata"] = metadata
    project, key = environ["PLUGIN_PROJECT"], environ.get("PLUGIN_API_KEY") or None
    return _start_and_follow(
        environ["PLUGIN_URL"], key, project, body, interactive=False, cancel_on_term=True
    )


class Terminated(Exception):
    """SIGTERM: Woodpecker cancels a step by stopping its container."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


def _start_and_follow(
    url: str,
    api_key: str | None,
    project: str,
    body: dict[str, Any],
    interactive: bool,
    cancel_on_term: bool = False,
) -> int:
    """`cancel_on_term`: a SIGTERM cancels the run (a cancelled CI step leaves no agent
    working) and the command exits 143."""
    with _client(url, api_key) as client:
        try:
            response = client.post(f"/projects/{project}/runs", json=body)
        except httpx.TransportError as exc:
            raise SystemExit(f"error: cannot reach the gateway at {url}: {exc}") from None
        if response.status_code != 202:
            raise SystemExit(_http_error(response))
        started = response.json()
        terminal = None
        if interactive:
            terminal = Terminal(client, f"/projects/{project}/runs/{started['run_id']}")
        follower = StreamFollower(client, started["stream_url"], terminal=terminal)
        if cancel_on_term:
            signal.signal(signal.SIGTERM, _raise_terminated)
        try:
            return _exit_code(follower.follow())
        except Terminated:
            cancelled = client.post(started["cancel_url"], timeout=60)
            log.warning("cancelled by SIGTERM: the run is %s", cancelled.json().get("status"))
            return 143


def follow_command(args: argparse.Namespace) -> int:
    with _client(args.url, args.api_key) as client:
        return _exit_code(StreamFollower(client, args.stream_url).follow())

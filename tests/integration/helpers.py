"""Helpers for tests that drive the gateway over real HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse

from adapters.memory import MemoryEventHub
from handlers.api import create_app
from handlers.bootstrap import build_gateway
from handlers.settings import Settings
from tests.conftest import fake_claude_command
from tests.fakes.servers import RunningServer
from tests.fakes.storage import memory_storage


def start_run(url: str, project: str = "demo", **body: Any) -> dict[str, Any]:
    body.setdefault("prompt", "hello there")
    response = httpx.post(f"{url}/projects/{project}/claude", json=body, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()


def read_stream(
    url: str, stream_url: str, headers: dict[str, str] | None = None, timeout: float = 30
) -> list[tuple[int | None, str, dict[str, Any]]]:
    """Every event of the stream as (id, event, data), until the server closes it."""
    events = []
    with (
        httpx.Client(base_url=url, timeout=timeout) as client,
        connect_sse(client, "GET", stream_url, headers=headers or {}) as source,
    ):
        assert source.response.status_code == 200, source.response.read()
        for sse in source.iter_sse():
            if not sse.data:
                # httpx-sse keeps the last id and so dispatches an empty event for the blank
                # line after a `: ping` comment; the SSE spec dispatches nothing there.
                continue
            seq = int(sse.id) if sse.id else None
            events.append((seq, sse.event, json.loads(sse.data)))
    return events


def follow_with_resume(url: str, stream_url: str, attempts: int = 20) -> tuple[list, int]:
    """Reads to `done` as a well-behaved client does: a stream that ends early is resumed
    with Last-Event-ID. Returns the events and how many reconnects it took."""
    events: list = []
    for reconnects in range(attempts):
        headers = {"Last-Event-ID": str(events[-1][0])} if events else {}
        events += read_stream(url, stream_url, headers)
        if events and events[-1][1] == "done":
            return events, reconnects
    raise AssertionError(f"no done after {attempts} connections")


Event = tuple[int | None, str, dict[str, Any]]


def post(url: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.post(f"{url}{path}", json=body or {}, timeout=30)


def follow(url: str, run: dict[str, Any], act: Callable[[Event], None]) -> list[Event]:
    """Reads the stream to `done`, calling `act` on each event as it arrives (an
    interactive run's test answers from there)."""
    events: list[Event] = []
    with (
        httpx.Client(base_url=url, timeout=60) as client,
        connect_sse(client, "GET", run["stream_url"]) as source,
    ):
        for sse in source.iter_sse():
            if not sse.data:
                continue
            event = (int(sse.id) if sse.id else None, sse.event, json.loads(sse.data))
            events.append(event)
            act(event)
    return events


def turn_ends(events: list[Event]) -> list[dict[str, Any]]:
    return [d for _, name, d in events if name == "output" and d["type"] == "turn_end"]


def texts(events: list[tuple[int | None, str, dict[str, Any]]]) -> str:
    return "".join(
        data["content"] for _, name, data in events if name == "output" and data["type"] == "text"
    )


def wait_for_file(path: Path, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text()
        time.sleep(0.02)
    raise AssertionError(f"{path} did not appear")


def wait_until(predicate: Any, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


class GatewayProcess:
    """`agent-gateway serve` as a process of its own, on a free loopback port."""

    def __init__(self, *flags: str, log_path: Path | None = None) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_GATEWAY_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "handlers.cli", "serve", "--port", str(self.port), *flags],
            env=env,
            stderr=log_path.open("ab") if log_path else None,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("the gateway did not start")

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def serve_flags(workspace: Path, *extra: str) -> list[str]:
    """`serve` flags for a gateway whose only provider is the fake claude CLI."""
    return [
        "--claude-command",
        fake_claude_command(),
        "--workspace-root",
        str(workspace),
        "--providers",
        "claude-code",
        *extra,
    ]


@contextlib.contextmanager
def app_with_fake_agent(agent: Any, **settings: Any) -> Iterator[Any]:
    """The whole app under uvicorn in this process, its only provider `agent` (a fake of
    ours), auth off. The server carries `agent`, `service` and `hub` for inspection."""
    hub = MemoryEventHub()
    gateway = build_gateway(
        Settings(rate_limit_per_s=0, **settings),
        agents={"fake": agent},
        storage=memory_storage(hub),
    )
    with RunningServer(create_app(gateway), "on") as server:
        server.agent, server.service, server.hub = agent, gateway.service, hub
        yield server

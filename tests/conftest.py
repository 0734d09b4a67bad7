from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from handlers.api import create_app
from handlers.bootstrap import build_gateway
from handlers.settings import Settings
from tests.fakes.servers import RunningServer

ROOT = Path(__file__).resolve().parent.parent
FAKE_CLAUDE = ROOT / "tests" / "fakes" / "fake_claude.py"
CLAUDE_CLI = ROOT / "tests" / "agents" / "node_modules" / ".bin" / "claude"


def fake_claude_command() -> str:
    return shlex.join([sys.executable, str(FAKE_CLAUDE)])


def process_alive(pid: int) -> bool:
    """True if the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def processes_working_in(folder: Path) -> list[int]:
    """Live processes whose working directory is inside `folder` (agents and their children)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry.name}/cwd")
        except OSError:
            continue
        if cwd.startswith(str(folder)) and process_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Any]:
    """Starts the whole app under real uvicorn on an ephemeral loopback port."""
    servers: list[RunningServer] = []

    def start(**overrides: Any) -> RunningServer:
        values: dict[str, Any] = {
            "claude_command": fake_claude_command(),
            "workspace_root": tmp_path / "workspaces",
            "providers": "claude-code",
            "interrupt_grace_s": 2.0,
            "terminate_grace_s": 2.0,
            "shutdown_grace_s": 5.0,
        }
        values.update(overrides)
        settings = Settings(**values)
        gateway = build_gateway(settings)
        server = RunningServer(create_app(gateway), lifespan="on")
        server.gateway = gateway  # type: ignore[attr-defined]
        server.workspace = settings.workspace_root  # type: ignore[attr-defined]
        servers.append(server.__enter__())
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


@pytest.fixture
def fake_kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fake Kubernetes API server with pod `demo-agent-0` (label project=demo) whose
    "container" is a folder here; KUBECONFIG points at it."""
    from tests.fakes.kube_apiserver import FakeKubeApiServer, FakePod, kubeconfig

    workdir = tmp_path / "pod"
    workdir.mkdir()
    fake = FakeKubeApiServer(
        [
            FakePod("demo-agent-0", workdir, labels={"project": "demo"}),
            FakePod("pending-agent-0", workdir, phase="Pending", ready=False),
        ]
    )
    with RunningServer(fake.app) as server:
        config = tmp_path / "kubeconfig.json"
        config.write_text(json.dumps(kubeconfig(server.url)))
        monkeypatch.setenv("KUBECONFIG", str(config))
        fake.workdir = workdir
        fake.server = server
        yield fake


@pytest.fixture(scope="session")
def redis_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.fakes.redis_server import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_server(redis_process: Any) -> Any:
    """One redis-server for the session, empty at each test's start: runs, queue entries,
    leases and templates of an earlier test would otherwise be taken up by this one's
    replicas (its queue dispatcher starts them, its lease keeper finishes them)."""
    redis_process.flush()
    return redis_process


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    from tests.fakes.postgres_server import PostgresServer

    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def database_url(postgres_server: Any) -> str:
    """A new, empty database of the session's PostgreSQL server."""
    url: str = postgres_server.new_database()
    return url


@pytest.fixture
async def postgres(database_url: str) -> AsyncIterator[Any]:
    """The PostgreSQL backend on a new database, started (schema migrated)."""
    from adapters.postgres import PostgresBackend

    backend = PostgresBackend(database_url, history_days=30)
    await backend.start()
    yield backend
    await backend.close()


@pytest.fixture(autouse=True)
def _no_gateway_settings_from_the_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AGENT_GATEWAY_"):
            monkeypatch.delenv(name)

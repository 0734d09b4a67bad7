"""schemathesis against the gateway's own OpenAPI document: real uvicorn on loopback, auth
on with a test key. No 5xx, and every answer matches the schema. Bounded in examples."""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from handlers.api import create_app
from handlers.bootstrap import build_gateway
from handlers.settings import Settings
from tests.conftest import fake_claude_command
from tests.fakes.servers import RunningServer

KEY = "schemathesis-key"
WORKDIR = Path(tempfile.mkdtemp(prefix="agent-gateway-fuzz-"))


def _app():
    keys_file = WORKDIR / "keys.json"
    entry = {"name": "fuzz", "sha256": hashlib.sha256(KEY.encode()).hexdigest()}
    keys_file.write_text(json.dumps({"keys": [{**entry, "projects": ["*"], "role": "run"}]}))
    settings_ = Settings(
        claude_command=fake_claude_command(),
        workspace_root=WORKDIR / "workspaces",
        providers="claude-code",
        api_keys_file=keys_file,
        rate_limit_per_s=0,
        max_runs_per_project=200,
    )
    return create_app(build_gateway(settings_))


APP = _app()  # the schema is this app's own document (compared with the served one below)
schema = schemathesis.openapi.from_dict(APP.openapi())


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with RunningServer(APP, lifespan="on") as running:
        served = httpx.get(f"{running.url}/openapi.json", headers={"X-API-Key": KEY}).json()
        assert served == APP.openapi()
        yield running


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_answers_match_the_schema(case, server):
    case.call_and_validate(base_url=server.url, headers={"X-API-Key": KEY}, timeout=30)

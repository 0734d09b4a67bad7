"""schemathesis against the gateway's own OpenAPI document: `agent-gateway serve` (real
uvicorn on loopback) with auth on and a test key. No 5xx, and every answer matches the
schema. Bounded in examples.

The gateway runs as a process of its own: Python 3.11 shares the AST builder's recursion
counter between threads, and hypothesis parses source while a server thread could be
formatting a traceback (which parses source too): "AST constructor recursion depth
mismatch" (cpython #106905)."""

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
from tests.integration.helpers import GatewayProcess

KEY = "schemathesis-key"
LACKING = ("template: no template", "credentials: the project has no")
WORKDIR = Path(tempfile.mkdtemp(prefix="agent-gateway-fuzz-"))
KEYS_FILE = WORKDIR / "keys.json"
KEYS_FILE.write_text(
    json.dumps(
        {
            "keys": [
                {
                    "name": "fuzz",
                    "sha256": hashlib.sha256(KEY.encode()).hexdigest(),
                    "projects": ["*"],
                    "role": "run",
                }
            ]
        }
    )
)
SETTINGS = {
    "claude_command": fake_claude_command(),
    "workspace_root": str(WORKDIR / "workspaces"),
    "providers": "claude-code",
    "api_keys_file": str(KEYS_FILE),
    "rate_limit_per_s": "0",
    "max_runs_per_project": "200",
}
# The document of an app built with the same settings: compared with the served one below.
DOCUMENT = create_app(build_gateway(Settings(**SETTINGS))).openapi()
# The runs feed never ends (it is live until the client leaves): a client that reads a
# whole body would wait forever. tests/integration/test_runs_feed.py covers it.
schema = schemathesis.openapi.from_dict(DOCUMENT).exclude(path="/events")


@pytest.fixture(scope="module")
def gateway() -> Iterator[GatewayProcess]:
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in SETTINGS.items()]
    process = GatewayProcess(*flags)
    try:
        served = httpx.get(f"{process.url}/openapi.json", headers={"X-API-Key": KEY}).json()
        assert served == DOCUMENT
        yield process
    finally:
        process.stop()


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_answers_match_the_schema(case, gateway):
    headers = {"X-API-Key": KEY}
    response = case.call(base_url=gateway.url, headers=headers, timeout=30)
    if response.status_code == 422 and response.json()["error"]["message"].startswith(LACKING):
        return  # a schema-valid run may name a template or credential that does not exist
    case.validate_response(response, headers=headers)

"""Templates and projects over real HTTP: from a file and from the API (JSON and YAML),
strict validation with the field's path, the resolution order (request > project overrides
> template > defaults), every claude-code option in the argv the agent received, the MCP
configuration as a file, the pod a template picks, and who may write what."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from domain.errors import AgentStartFailed
from domain.model import AgentRequest
from tests.fakes.kube_apiserver import FakePod
from tests.integration.helpers import read_stream
from tests.integration.test_auth import write_keys

MCP = {"mcpServers": {"files": {"command": "mcp-files", "args": ["--root", "."]}}}
REVIEWER_YAML = """
provider: claude-code
model: claude-opus-4
append_system_prompt: "Review only; never push."
allowed_tools: ["Read", "Bash(git diff:*)"]
disallowed_tools: [WebFetch]
permission_mode: acceptEdits
max_turns: 7
max_budget_usd: 2.5
timeout_s: 600
priority: 5
metadata: {team: platform, kind: review}
mcp_servers:
  mcpServers:
    files: {command: mcp-files, args: ["--root", "."]}
"""


@pytest.fixture
def gateway(start_gateway, tmp_path):
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "reviewer.yaml").write_text(REVIEWER_YAML)
    return start_gateway(templates_dir=folder)


def put_yaml(url: str, path: str, text: str, headers: dict | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/yaml", **(headers or {})}
    return httpx.put(f"{url}{path}", content=text.encode(), headers=headers)


def received_argv(server, run_id: str | None = None) -> list[str]:
    return json.loads((server.workspace / "demo" / "received_argv.json").read_text())


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_a_file_template_and_an_api_template_are_listed_and_only_one_can_change(gateway):
    url = gateway.url
    assert (
        put_yaml(url, "/templates/quick", "model: claude-haiku\nmax_turns: 2\n").status_code == 200
    )
    json_put = httpx.put(f"{url}/templates/strict", json={"permission_mode": "default"})
    assert json_put.status_code == 200, json_put.text
    listed = {t["name"]: t for t in httpx.get(f"{url}/templates").json()}
    assert set(listed) == {"quick", "reviewer", "strict"}
    assert listed["reviewer"]["source"].endswith("reviewer.yaml")
    assert listed["reviewer"]["settings"]["allowed_tools"] == ["Read", "Bash(git diff:*)"]
    assert listed["quick"]["source"] == "api" and listed["quick"]["settings"]["max_turns"] == 2
    assert put_yaml(url, "/templates/reviewer", "model: x\n").status_code == 409
    assert httpx.delete(f"{url}/templates/reviewer").status_code == 409
    assert httpx.delete(f"{url}/templates/strict").status_code == 204
    assert httpx.get(f"{url}/templates/strict").status_code == 404


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ("kube: {colour: blue}\n", "kube.colour"),
        ("max_turns: 0\n", "max_turns"),
        ("max_turns: 2.5\n", "max_turns"),
        ("permission_mode: yolo\n", "permission_mode"),
        ("allowed_tools: ['a,b']\n", "allowed_tools.0"),
        ("interactive: 1\n", "interactive"),
        ("webhook: []\n", "webhook"),
        ("model: [unclosed\n", "body"),
    ],
)
def test_a_bad_template_is_422_naming_the_field(gateway, body, path):
    response = put_yaml(gateway.url, "/templates/bad", body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"].startswith(path), response.text


def test_a_run_gets_every_option_of_its_projects_template(gateway):
    url = gateway.url
    project = {"template": "reviewer", "overrides": {"max_turns": 3, "metadata": {"kind": "fix"}}}
    assert httpx.put(f"{url}/projects/demo", json=project).status_code == 200
    body = {"prompt": "hello", "metadata": {"ticket": "T-1"}}
    started = httpx.post(f"{url}/projects/demo/runs", json=body).json()
    events = read_stream(url, started["stream_url"])
    assert events[-1][2]["status"] == "succeeded"
    argv = received_argv(gateway)
    assert option(argv, "--model") == "claude-opus-4"
    assert option(argv, "--append-system-prompt") == "Review only; never push."
    assert option(argv, "--allowedTools") == "Read,Bash(git diff:*)"
    assert option(argv, "--disallowedTools") == "WebFetch"
    assert option(argv, "--permission-mode") == "acceptEdits"
    assert option(argv, "--max-turns") == "3"  # the project's override wins over the template
    assert option(argv, "--max-budget-usd") == "2.5"
    mcp_file = gateway.workspace / "demo" / option(argv, "--mcp-config")
    assert json.loads(mcp_file.read_text()) == MCP and "mcp-files" not in " ".join(argv)
    record = httpx.get(f"{url}/projects/demo/runs/{started['run_id']}").json()
    assert record["template"] == "reviewer"
    assert record["metadata"] == {"team": "platform", "kind": "fix", "ticket": "T-1"}
    assert record["settings"]["max_turns"] == 3 and record["settings"]["priority"] == 5
    assert record["settings"]["mcp_servers"] == ["files"]  # by name: configs may hold tokens


def test_the_request_wins_and_may_name_another_template(gateway):
    url = gateway.url
    assert httpx.put(f"{url}/templates/quick", json={"model": "claude-haiku"}).status_code == 200
    assert httpx.put(f"{url}/projects/demo", json={"template": "reviewer"}).status_code == 200
    body = {"prompt": "hi", "template": "quick", "model": "claude-sonnet"}
    started = httpx.post(f"{url}/projects/demo/runs", json=body).json()
    read_stream(url, started["stream_url"])
    argv = received_argv(gateway)
    assert option(argv, "--model") == "claude-sonnet" and "--max-turns" not in argv
    record = httpx.get(f"{url}/projects/demo/runs/{started['run_id']}").json()
    assert record["template"] == "quick"
    unknown = httpx.post(f"{url}/projects/demo/runs", json={"prompt": "x", "template": "nope"})
    assert unknown.status_code == 422 and "template" in unknown.text


def test_projects_are_validated_and_listed(gateway):
    url = gateway.url
    unknown = httpx.put(f"{url}/projects/demo", json={"template": "nope"})
    assert unknown.status_code == 422 and "nope" in unknown.text
    bad = httpx.put(f"{url}/projects/demo", json={"overrides": {"max_budget_usd": -1}})
    assert bad.status_code == 422 and "overrides.max_budget_usd" in bad.text
    assert httpx.get(f"{url}/projects/demo").status_code == 404
    assert httpx.put(f"{url}/projects/demo", json={"template": "reviewer"}).status_code == 200
    assert httpx.put(f"{url}/projects/other", json={}).status_code == 200
    assert [p["project_id"] for p in httpx.get(f"{url}/projects").json()] == ["demo", "other"]
    assert httpx.get(f"{url}/projects/demo").json()["template"] == "reviewer"
    assert httpx.delete(f"{url}/templates/reviewer").status_code == 409  # a file, and in use


def test_who_may_write_templates_and_projects(start_gateway, tmp_path):
    keys_file = tmp_path / "keys.json"
    write_keys(
        keys_file,
        ("platform", "platform-key", ["*"], "admin"),
        ("owner", "owner-key", ["demo"], "admin"),
        ("ci", "ci-key", ["demo"], "run"),
    )
    url = start_gateway(api_keys_file=keys_file).url

    def as_(key: str) -> dict[str, str]:
        return {"X-API-Key": key}

    template = {"model": "claude-haiku"}
    assert (
        httpx.put(f"{url}/templates/t", json=template, headers=as_("owner-key")).status_code == 403
    )
    assert httpx.put(f"{url}/templates/t", json=template, headers=as_("ci-key")).status_code == 403
    ok = httpx.put(f"{url}/templates/t", json=template, headers=as_("platform-key"))
    assert ok.status_code == 200
    assert httpx.get(f"{url}/templates", headers=as_("ci-key")).status_code == 200
    project = {"template": "t"}
    assert httpx.put(f"{url}/projects/demo", json=project, headers=as_("ci-key")).status_code == 403
    assert (
        httpx.put(f"{url}/projects/demo", json=project, headers=as_("owner-key")).status_code == 200
    )
    assert (
        httpx.put(f"{url}/projects/else", json=project, headers=as_("owner-key")).status_code == 404
    )
    assert httpx.get(f"{url}/projects", headers=as_("ci-key")).json()[0]["project_id"] == "demo"


def test_a_template_picks_the_pod_and_its_mcp_file_is_written_there(
    start_gateway, fake_kube, tmp_path: Path
):
    special = tmp_path / "special-pod"
    special.mkdir()
    fake_kube.pods[("default", "special-demo")] = FakePod("special-demo", special)
    server = start_gateway(runner="kubernetes", interrupt_grace_s=1, terminate_grace_s=1)
    template = {"kube": {"pod": "special-{project}"}, "mcp_servers": MCP}
    assert httpx.put(f"{server.url}/templates/pinned", json=template).status_code == 200
    assert httpx.put(f"{server.url}/projects/demo", json={"template": "pinned"}).status_code == 200
    started = httpx.post(f"{server.url}/projects/demo/runs", json={"prompt": "hi there"}).json()
    events = read_stream(server.url, started["stream_url"])
    assert events[-1][2]["status"] == "succeeded"
    assert (special / "received_prompt.bin").read_bytes() == b"hi there"  # that pod ran it
    argv = json.loads((special / "received_argv.json").read_text())
    assert json.loads((special / option(argv, "--mcp-config")).read_text()) == MCP
    assert not any("mcp-files" in part for part in fake_kube.execs[0])  # not in the exec URL


async def test_opencode_and_the_messages_api_refuse_what_they_cannot_take():
    from adapters.anthropic_api import AnthropicAgent, AnthropicSettings
    from adapters.memory import MemoryRunStore
    from adapters.opencode import OpenCodeAgent, OpenCodeSettings

    request = AgentRequest.create("demo", "hi", max_turns=3, mcp_servers=MCP)
    opencode = OpenCodeAgent(OpenCodeSettings(url_template="http://127.0.0.1:9/{project}"))
    with pytest.raises(AgentStartFailed, match="opencode does not take max_turns, mcp_servers"):
        await opencode.start("r1", request, {})
    anthropic = AnthropicAgent(AnthropicSettings(model="m", api_key="k"), MemoryRunStore())
    with pytest.raises(AgentStartFailed, match="does not take max_turns, mcp_servers"):
        await anthropic.start("r2", request, {})


def test_the_templates_shipped_in_deploy_are_valid():
    from handlers.bootstrap import load_template_files
    from tests.fakes.clock import FakeClock

    folder = Path(__file__).resolve().parents[2] / "deploy" / "base" / "templates"
    templates = load_template_files(folder, FakeClock())
    assert "reviewer" in templates and templates["reviewer"].settings.max_turns == 30


def test_a_bad_template_file_stops_start_up_naming_the_file_and_field(tmp_path):
    from handlers.bootstrap import load_template_files
    from handlers.settings import SettingsError
    from tests.fakes.clock import FakeClock

    (tmp_path / "broken.yaml").write_text("kube: {colour: blue}\n")
    with pytest.raises(SettingsError, match=r"broken\.yaml: kube\.colour"):
        load_template_files(tmp_path, FakeClock())

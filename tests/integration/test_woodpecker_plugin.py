"""`agent-gateway ci`, the Woodpecker plugin step, against a real gateway: the step's
settings come as PLUGIN_* variables and the pipeline's as CI_* (as Woodpecker passes them),
the output is printed as it happens, the exit code is the run's, the CI_* land in the run's
metadata."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from tests.integration.test_auth import write_keys

PIPELINE = {
    "CI_REPO": "acme/widgets",
    "CI_COMMIT_SHA": "4f1c2d3e",
    "CI_COMMIT_BRANCH": "main",
    "CI_PIPELINE_NUMBER": "42",
    "CI_PIPELINE_URL": "https://ci.example/repos/7/pipeline/42",
}


def step(**settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_GATEWAY_", "PLUGIN_"))}
    env.update(PIPELINE)
    env.update({f"PLUGIN_{name.upper()}": value for name, value in settings.items()})
    return subprocess.run(
        [sys.executable, "-m", "handlers.cli", "ci"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_step_runs_the_agent_prints_it_and_records_the_pipeline(start_gateway, tmp_path):
    keys = tmp_path / "keys.json"
    write_keys(keys, ("woodpecker", "ci-secret-key", ["demo"], "run"))
    server = start_gateway(api_keys_file=keys)
    done = step(
        url=server.url,
        project="demo",
        prompt="hello from CI",
        api_key="ci-secret-key",
        provider="claude-code",
        timeout="600",
    )
    assert done.returncode == 0, done.stderr
    assert "You said: hello from CI" in done.stdout and "[done] status=succeeded" in done.stdout
    runs = httpx.get(
        f"{server.url}/projects/demo/runs", headers={"X-API-Key": "ci-secret-key"}
    ).json()
    assert runs[0]["metadata"] == PIPELINE
    assert runs[0]["settings"]["timeout_s"] == 600


def test_a_failed_run_fails_the_step_and_a_template_is_used(start_gateway):
    server = start_gateway()
    assert httpx.put(f"{server.url}/templates/quick", json={"max_turns": 2}).status_code == 200
    failed = step(url=server.url, project="demo", prompt="crash now", template="quick")
    assert failed.returncode == 1 and "status=failed" in failed.stdout
    record = httpx.get(f"{server.url}/projects/demo/runs").json()[0]
    assert record["template"] == "quick" and record["settings"]["max_turns"] == 2
    unknown = step(url=server.url, project="demo", prompt="hi", template="nope")
    assert unknown.returncode != 0 and "422" in unknown.stderr


def test_missing_settings_are_named():
    missing = step(url="http://127.0.0.1:9")
    assert missing.returncode != 0
    assert "PLUGIN_PROJECT, PLUGIN_PROMPT" in missing.stderr


def test_the_example_pipeline_uses_the_settings_the_step_reads():
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[2] / "deploy" / "woodpecker"
    pipeline = yaml.safe_load((root / "example.woodpecker.yaml").read_text())
    settings = pipeline["steps"][0]["settings"]
    known = {"url", "project", "prompt", "provider", "api_key", "template", "timeout"}
    assert set(settings) <= known and {"url", "project", "prompt"} <= set(settings)
    assert settings["api_key"] == {"from_secret": "agent_gateway_key"}
    assert 'ENTRYPOINT ["agent-gateway", "ci"]' in (root / "Dockerfile").read_text()


def test_a_cancelled_step_cancels_its_run(start_gateway):
    import signal

    server = start_gateway()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_GATEWAY_", "PLUGIN_"))}
    env.update({"PLUGIN_URL": server.url, "PLUGIN_PROJECT": "demo", "PLUGIN_PROMPT": "slow"})
    step_process = subprocess.Popen(
        [sys.executable, "-m", "handlers.cli", "ci"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert step_process.stdout is not None
    seen = ""
    while "w2 " not in seen:  # the agent is working (its deltas come without newlines)
        chunk = os.read(step_process.stdout.fileno(), 4096)
        assert chunk, "the step ended before its agent worked"
        seen += chunk.decode()
    step_process.send_signal(signal.SIGTERM)  # Woodpecker cancels the step
    assert step_process.wait(30) == 143
    run = httpx.get(f"{server.url}/projects/demo/runs").json()[0]
    assert run["status"] == "cancelled"

"""The fake API server against the real kubectl (v1.32): proof that the fake speaks the
exec protocol the way a cluster does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fakes.kube_apiserver import FakeKubeApiServer, FakePod, kubeconfig
from tests.fakes.servers import RunningServer

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")


@pytest.fixture
def kubectl(tmp_path: Path):
    fake = FakeKubeApiServer([FakePod("demo-agent-0", tmp_path)])
    with RunningServer(fake.app) as server:
        config = tmp_path / "kubeconfig"
        config.write_text(json.dumps(kubeconfig(server.url)))
        # A temporary HOME: kubectl caches the server's version under ~/.kube/cache.
        env = {**os.environ, "HOME": str(tmp_path), "KUBECONFIG": str(config)}

        def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["kubectl", *args],
                env=env,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=60,
            )

        yield run


def test_exec_output_and_exit_code(kubectl):
    result = kubectl("exec", "demo-agent-0", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert result.returncode == 3
    assert result.stdout == "out\n"
    assert result.stderr.startswith("err\n")


def test_exec_success(kubectl):
    result = kubectl("exec", "demo-agent-0", "-c", "agent", "--", "printf", "a b\\nc")
    assert result.returncode == 0 and result.stdout == "a b\nc"


def test_exec_with_stdin_ends_when_stdin_closes(kubectl):
    result = kubectl("exec", "-i", "demo-agent-0", "--", "cat", stdin="hello\nstdin ü\n")
    assert result.returncode == 0 and result.stdout == "hello\nstdin ü\n"


def test_exec_of_a_missing_pod_fails(kubectl):
    result = kubectl("exec", "nope", "--", "true")
    assert result.returncode != 0 and "not found" in result.stderr

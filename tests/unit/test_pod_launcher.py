"""The launcher that takes credentials and files off the exec's stdin in a pod, run by the
real `sh` (dash here) and `bash`: odd values arrive intact, names that are the launcher's
own words do not disturb it, and the agent reads exactly its own stdin afterwards."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from adapters.kubernetes.runner import LAUNCHER, framed

AGENT = 'printf "%s|%s|%s" "$count" "$line" "$TOKEN" > env.out; cat > stdin.out'
VALUES = {
    "TOKEN": "-n \\back\\slash 'quoted' \"dq\" $(id) ünï\nline two\n\n",
    "count": "7",  # the launcher's words once: must not matter now
    "line": "x=y",
}


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_values_files_and_the_agents_stdin_arrive_intact(shell, tmp_path: Path):
    if shutil.which(shell) is None:
        pytest.skip(f"no {shell}")
    files = {".agent-gateway/mcp-r1.json": b'{"mcpServers": {}}\n'}
    stdin = framed(VALUES, files) + b"the prompt\nand more\n"
    argv = [shell, "-c", LAUNCHER, "agent-gateway-launcher", "sh", "-c", AGENT]
    done = subprocess.run(argv, input=stdin, cwd=tmp_path, capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "env.out").read_text() == f"7|x=y|{VALUES['TOKEN']}"
    assert (tmp_path / "stdin.out").read_bytes() == b"the prompt\nand more\n"
    assert (tmp_path / ".agent-gateway/mcp-r1.json").read_bytes() == files[
        ".agent-gateway/mcp-r1.json"
    ]

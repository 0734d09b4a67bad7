"""The transcript save script, run here by the real `sh`: what it prints and its exit
codes, which decide whether the gateway keeps, leaves or drops a transcript."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from adapters.claude_code.transcripts import NO_TRANSCRIPT, SAVE_SCRIPT, TOO_LARGE


def save(
    home: Path, session: str, max_bytes: int, path: str | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "HOME": str(home), "PATH": path or os.environ["PATH"]}
    env.pop("CLAUDE_CONFIG_DIR", None)
    argv = ["sh", "-c", SAVE_SCRIPT, "sh", session, str(max_bytes)]
    return subprocess.run(argv, env=env, capture_output=True, timeout=30)


def test_it_prints_the_path_and_content_or_says_none_or_too_large(tmp_path: Path):
    folder = tmp_path / ".claude" / "projects" / "-work-demo"
    folder.mkdir(parents=True)
    (folder / "s1.jsonl").write_bytes(b'{"turn": 1}\n')
    done = save(tmp_path, "s1", 100)
    assert (done.returncode, done.stdout) == (0, b'-work-demo/s1.jsonl\n{"turn": 1}\n')
    assert save(tmp_path, "s2", 100).returncode == NO_TRANSCRIPT
    assert save(tmp_path, "s1", 5).returncode == TOO_LARGE


def test_a_size_that_cannot_be_read_is_not_called_too_large(tmp_path: Path):
    """Too large drops the copy the gateway kept; a failing `wc` must not."""
    folder = tmp_path / ".claude" / "projects" / "-work-demo"
    folder.mkdir(parents=True)
    (folder / "s1.jsonl").write_bytes(b"{}\n")
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "wc").write_text("#!/bin/sh\nexit 2\n")
    (tools / "wc").chmod(0o755)
    done = save(tmp_path, "s1", 100, path=f"{tools}:{os.environ['PATH']}")
    assert done.returncode not in (0, NO_TRANSCRIPT, TOO_LARGE)

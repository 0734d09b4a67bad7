"""`make serve` falls back on the claude CLI of deploy/claude-code: the version the tests run."""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "@anthropic-ai/claude-code"


def locked_version(folder: str) -> str:
    lock = json.loads((ROOT / folder / "package-lock.json").read_text())
    return lock["packages"][f"node_modules/{PACKAGE}"]["version"]


def test_serve_and_the_tests_pin_the_same_claude_cli():
    pinned = json.loads((ROOT / "deploy/claude-code/package.json").read_text())
    assert pinned["dependencies"][PACKAGE] == locked_version("deploy/claude-code")
    assert locked_version("deploy/claude-code") == locked_version("tests/agents")

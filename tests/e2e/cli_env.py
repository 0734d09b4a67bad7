"""The environment that points the real claude CLI at the fake Messages API (the gateway
passes its environment, minus its own settings, to the CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest


def point_the_cli_at(api_url: str, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": api_url,
        "ANTHROPIC_API_KEY": "dummy",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_TMPDIR": str(home),
        "CLAUDE_CODE_MAX_RETRIES": "0",
    }.items():
        monkeypatch.setenv(name, value)

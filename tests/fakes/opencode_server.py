"""The real `opencode serve` (from tests/agents), configured offline against a fake
OpenAI-compatible API: temporary HOME/XDG folders, no model-list fetch, no updates, no
sharing, and a pre-made plugin folder so that it does not run npm install."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
OPENCODE = ROOT / "tests" / "agents" / "node_modules" / ".bin" / "opencode"
VERSION = "1.18.33"
MODEL = "fake/fake-model"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OpenCodeServer:
    def __init__(self, folder: Path, api_url: str, password: str | None = None) -> None:
        self.folder = folder
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.project = folder / "project"
        for name in ("home", "config/opencode/node_modules", "data", "cache", "state", "project"):
            (folder / name).mkdir(parents=True, exist_ok=True)
        config = {
            "enabled_providers": ["fake"],
            "provider": {
                "fake": {
                    "npm": "@ai-sdk/openai-compatible",
                    "name": "Fake",
                    "options": {"baseURL": f"{api_url}/v1", "apiKey": "dummy"},
                    "models": {
                        "fake-model": {"name": "Fake", "limit": {"context": 100000, "output": 4096}}
                    },
                }
            },
            "model": MODEL,
            "small_model": MODEL,
            "autoupdate": False,
            "share": "disabled",
            "snapshot": False,
            "lsp": False,
            "formatter": False,
        }
        (folder / "opencode.json").write_text(json.dumps(config))
        plugin = {"dependencies": {"@opencode-ai/plugin": VERSION}}
        (folder / "config/opencode/package.json").write_text(json.dumps(plugin))
        lock = {
            "name": "opencode",
            "lockfileVersion": 3,
            "requires": True,
            "packages": {"": plugin, "node_modules/@opencode-ai/plugin": {"version": VERSION}},
        }
        (folder / "config/opencode/package-lock.json").write_text(json.dumps(lock))
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AGENT_GATEWAY_")},
            "HOME": str(folder / "home"),
            "XDG_CONFIG_HOME": str(folder / "config"),
            "XDG_DATA_HOME": str(folder / "data"),
            "XDG_CACHE_HOME": str(folder / "cache"),
            "XDG_STATE_HOME": str(folder / "state"),
            "OPENCODE_CONFIG": str(folder / "opencode.json"),
            "OPENCODE_DISABLE_MODELS_FETCH": "1",
            "OPENCODE_DISABLE_AUTOUPDATE": "1",
            "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
            "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
            "OPENCODE_DISABLE_SHARE": "1",
        }
        if password:
            self.env["OPENCODE_SERVER_PASSWORD"] = password
        self._auth = ("opencode", password) if password else None
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> OpenCodeServer:
        self.process = subprocess.Popen(
            [str(OPENCODE), "serve", "--hostname", "127.0.0.1", "--port", str(self.port)],
            cwd=self.project,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # A request before the server is ready can hang for minutes: short polls only.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"{self.url}/global/health", timeout=0.5, auth=self._auth)
                if health.status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError("opencode serve did not start")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def established_connections(self) -> int:
        """Open TCP connections to the server's port, as seen from this machine's client side."""
        count = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if remote_port == self.port and fields[3] == "01":  # ESTABLISHED
                    count += 1
        return count

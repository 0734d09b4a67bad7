"""Real uvicorn servers on ephemeral loopback ports, for tests."""

from __future__ import annotations

import socket
import threading
from typing import Any

import uvicorn


class RunningServer:
    """A uvicorn server on an ephemeral loopback port, in a thread of its own."""

    def __init__(self, app: Any, lifespan: str = "off") -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan=lifespan)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> RunningServer:
        self._thread.start()
        while not self._server.started:
            threading.Event().wait(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()

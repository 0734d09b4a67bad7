"""Real uvicorn servers on ephemeral loopback ports, for tests."""

from __future__ import annotations

import asyncio
import inspect
import socket
import threading
from typing import Any

import uvicorn


class RunningServer:
    """A uvicorn server on an ephemeral loopback port, in a thread of its own."""

    def __init__(self, app: Any, lifespan: str = "off", port: int = 0) -> None:
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan=lifespan)
        self._server = uvicorn.Server(config)
        self.loop: asyncio.AbstractEventLoop | None = None  # the server's, once started
        serve = self._server.serve

        async def serve_and_note_the_loop(sockets: Any = None) -> None:
            self.loop = asyncio.get_running_loop()
            await serve(sockets=sockets)

        self._server.serve = serve_and_note_the_loop  # type: ignore[method-assign]
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def call(self, function: Any) -> Any:
        """Runs `function()` on the server's loop (between its tasks) and returns its result
        (awaited, if it is a coroutine)."""
        assert self.loop is not None

        async def run() -> Any:
            result = function()
            return await result if inspect.isawaitable(result) else result

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def __enter__(self) -> RunningServer:
        self._thread.start()
        while not self._server.started:
            threading.Event().wait(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()


class FlakyProxy:
    """A TCP proxy to a loopback port that cuts the first `drops` connections after
    `cut_after` bytes from the server: a dropped SSE connection, on demand. With `marker`,
    only connections whose response carries it are cut, counting from the marker.
    `black_hole()` makes the connections open at that moment go silent both ways without
    closing (a network cut as a client sees it); new connections still pass."""

    def __init__(
        self, target_port: int, cut_after: int, drops: int, marker: bytes | None = None
    ) -> None:
        self._target_port = target_port
        self._cut_after = cut_after
        self._marker = marker
        self._lock = threading.Lock()
        self.drops_left = drops
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen()
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self._generation = 0  # connections opened before a black_hole() carry an older one
        self._silenced_below = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection(("127.0.0.1", self._target_port))
            generation = self._generation
            for source, sink, may_cut in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(
                    target=self._pipe, args=(source, sink, may_cut, generation), daemon=True
                ).start()

    def black_hole(self) -> None:
        self._generation += 1
        self._silenced_below = self._generation

    def _take_drop(self) -> bool:
        with self._lock:
            if self.drops_left <= 0:
                return False
            self.drops_left -= 1
            return True

    def _pipe(
        self, source: socket.socket, sink: socket.socket, may_cut: bool, generation: int
    ) -> None:
        counted: int | None = None  # bytes since the cut began counting; None: not counting
        if may_cut and self._marker is None and self._take_drop():
            counted = 0
        try:
            while data := source.recv(65536):
                if generation < self._silenced_below:
                    continue  # swallowed: neither end hears of the other again
                if may_cut and counted is None and self._marker and self._marker in data:
                    if self._take_drop():
                        counted = -data.index(self._marker)
                if counted is not None and counted + len(data) >= self._cut_after:
                    sink.sendall(data[: max(self._cut_after - counted, 0)])
                    break
                sink.sendall(data)
                if counted is not None:
                    counted += len(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self._listener.close()

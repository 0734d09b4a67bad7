"""One agent process in a pod: its exec pumped by a worker thread, stopped by a second exec.

Closing an exec connection does not stop the process in the container (kubernetes/kubernetes
#89031, kubectl #1076): stopping is a second exec that signals every process carrying the
run's tag, then the first exec reports the exit status."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor

from kubernetes.stream.ws_client import WSClient, _IgnoredIO
from websocket import WebSocketException

from adapters.kubernetes.exec_transport import (
    STATUS_CHANNEL,
    ExecFailed,
    Target,
    parse_status,
    write_stdin,
)
from domain.errors import ProcessLost
from ports.process_runner import Channel

log = logging.getLogger(__name__)

TAG_VARIABLE = "AGENT_GATEWAY_PROCESS_TAG"

# Runs inside the pod with the tag and the grace periods as positional arguments (never
# spliced into the script): interrupt, terminate, then kill every process whose environment
# carries the tag, including descendants that left the process group (the claude CLI starts
# tools with setsid) or were orphaned.
STOP_SCRIPT = r"""
tag="AGENT_GATEWAY_PROCESS_TAG=$1"
tagged() {
  for environ in /proc/[0-9]*/environ; do
    if tr '\0' '\n' < "$environ" 2>/dev/null | grep -qxF "$tag"; then
      pid=${environ#/proc/}; echo "${pid%/environ}"
    fi
  done
}
signal_all() { for pid in $(tagged); do kill -"$1" "$pid" 2>/dev/null; done; }
wait_gone() {
  deadline=$(( $(date +%s) + $1 ))
  while [ -n "$(tagged)" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
}
[ -z "$(tagged)" ] && exit 0
signal_all INT; wait_gone "$2"
signal_all TERM; wait_gone "$3"
signal_all KILL; wait_gone 5
[ -z "$(tagged)" ]
"""


class ExecProcess:
    """AgentProcess for one exec. A worker thread (`pump`) reads frames and hands them to
    the loop."""

    QUEUE_CHUNKS = 64

    def __init__(
        self,
        target: Target,
        tag: str,
        connection: WSClient,
        calls: ThreadPoolExecutor,  # for the stop script's exec
        grace: tuple[float, float],
        stdin_open: bool = False,
    ) -> None:
        self._target = target
        # An interactive agent's further input: written by the pump thread between reads
        # (one thread on the socket), None = close stdin. Polled every 0.1 s, not every 1 s.
        self._stdin_open = stdin_open
        self._writes: deque[bytes | None] = deque()
        self._update_timeout_s = 0.1 if stdin_open else 1.0
        self._tag = tag
        self._connection = connection
        self._calls = calls
        self._grace = grace
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[tuple[Channel, bytes] | None] = asyncio.Queue(self.QUEUE_CHUNKS)
        self._exited: asyncio.Future[int | None] = self._loop.create_future()
        self._failure: str | None = None
        self._stop_lock = asyncio.Lock()
        self._stopped = False
        self._closing = threading.Event()
        # The client keeps a copy of all output for read_all() unless told otherwise, and
        # stream() cannot tell it: drop that copy so a long run does not grow memory.
        connection._all = _IgnoredIO()

    def pump(self, ping_interval_s: float) -> None:
        """Runs in a worker thread until the exec ends: frames in, status out."""
        connection = self._connection
        status = bytearray()
        last_ping = time.monotonic()
        try:
            while connection.is_open():
                connection.update(timeout=self._update_timeout_s)
                self._drain(status)
                self._write_pending()
                if time.monotonic() - last_ping > ping_interval_s:
                    connection.sock.ping()  # keeps proxies from closing a silent exec
                    last_ping = time.monotonic()
        except (WebSocketException, OSError) as exc:
            log.warning("exec in %s/%s lost: %s", self._target.namespace, self._target.pod, exc)
        finally:
            connection.close()
            self._drain(status)  # what the last update() buffered, after the close
            code, self._failure = parse_status(bytes(status))
            self._hand_over(None)
            self._loop.call_soon_threadsafe(self._set_exit, code)

    def _write_pending(self) -> None:
        while self._writes:
            data = self._writes.popleft()
            if data is None:
                self._connection.close_channel(0)
            else:
                write_stdin(self._connection, data)

    def _drain(self, status: bytearray) -> None:
        # read_channel() may itself call update() and buffer frames of other channels, so
        # drain until a pass finds nothing.
        while True:
            stdout = self._connection.read_channel(1)
            stderr = self._connection.read_channel(2)
            extra = self._connection.read_channel(STATUS_CHANNEL)
            if stdout:
                self._hand_over(("stdout", stdout))
            if stderr:
                self._hand_over(("stderr", stderr))
            status += extra or b""
            if not (stdout or stderr or extra):
                return

    def _hand_over(self, item: tuple[Channel, bytes] | None) -> None:
        """Blocks this worker thread while the queue is full: back-pressure on the pod."""
        future = asyncio.run_coroutine_threadsafe(self._queue.put(item), self._loop)
        while not self._closing.is_set():
            try:
                future.result(timeout=1)
                return
            except TimeoutError:
                continue
        future.cancel()

    def _set_exit(self, code: int | None) -> None:
        if not self._exited.done():
            self._exited.set_result(code)

    async def output(self) -> AsyncGenerator[tuple[Channel, bytes], None]:
        try:
            while (item := await self._queue.get()) is not None:
                yield item
        finally:
            self._closing.set()  # the consumer is gone: never block the pump again

    def write(self, data: bytes) -> None:
        if self._stdin_open:
            self._writes.append(data)

    def close_stdin(self) -> None:
        if self._stdin_open:
            self._stdin_open = False
            self._writes.append(None)

    async def wait(self) -> int:
        code = await asyncio.shield(self._exited)
        if code is None:
            raise ProcessLost(self._failure or "exit status unknown")
        return code

    async def stop(self) -> None:
        """Stops every process of the run in the pod, then waits for the exec's status."""
        async with self._stop_lock:
            if self._stopped:
                return
            interrupt_grace, terminate_grace = self._grace
            command = [
                "sh",
                "-c",
                STOP_SCRIPT,
                "sh",
                self._tag,
                str(round(interrupt_grace)),
                str(round(terminate_grace)),
            ]
            try:
                await self._loop.run_in_executor(
                    self._calls, lambda: self._target.exec(command, preload=True)
                )
            except ExecFailed as exc:
                log.warning("could not stop run processes in the pod: %s", exc)
            if not self._exited.done():
                try:
                    await asyncio.wait_for(asyncio.shield(self._exited), 10)
                except TimeoutError:
                    log.warning("exec did not report a status after stop; closing it")
                    self._connection.close()
                    await asyncio.shield(self._exited)
            self._stopped = True

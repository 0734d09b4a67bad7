"""One agent process in a pod: its exec read by a task on the event loop, stopped by a
second exec.

Closing an exec connection does not stop the process in the container (kubernetes/kubernetes
#89031, kubectl #1076): stopping is a second exec that signals every process carrying the
run's tag, then the first exec reports the exit status. An exec whose connection breaks
(the API server restarted, a network cut) is stopped the same way before the run fails.
An agent that ends by itself needs no second exec: the shell it runs under stops what it
left behind before the exec reports its status."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable

from adapters.kubernetes.exec_transport import (
    STATUS,
    STDERR,
    STDOUT,
    ExecFailed,
    ExecLost,
    ExecSocket,
    parse_status,
)
from domain.errors import ProcessLost
from ports.process_runner import Channel

log = logging.getLogger(__name__)

TAG_VARIABLE = "AGENT_GATEWAY_PROCESS_TAG"
STATUS_AFTER_STOP_S = 10.0  # how long the exec may take to report its status after a stop

# Runs inside the pod with the tag and the grace periods as positional arguments (never
# spliced into the script): interrupt, terminate, then kill every process whose environment
# carries the tag, including descendants that left the process group (the claude CLI starts
# tools with setsid) or were orphaned. Its status: whether they are all gone, or the 4th
# argument when one is given (the agent's status, when AFTER_AGENT runs it). Run so, it
# ignores INT and TERM: a separate stop's signals, sent to the pids it found tagged a moment
# ago, may reach it, since it was the wrapper (it kept its pid).
STOP_SCRIPT = r"""
[ -n "$4" ] && trap '' INT TERM
tag="AGENT_GATEWAY_PROCESS_TAG=$1"
if printf 'x\0' | grep -qzx x 2>/dev/null; then
  # One grep reads every environment (GNU and BusyBox grep know -z).
  tagged() {
    for environ in $(grep -lsxzF "$tag" /proc/[0-9]*/environ); do
      pid=${environ#/proc/}; echo "${pid%/environ}"
    done
  }
else
  tagged() {
    for environ in /proc/[0-9]*/environ; do
      if tr '\0' '\n' 2>/dev/null < "$environ" | grep -qxF "$tag"; then
        pid=${environ#/proc/}; echo "${pid%/environ}"
      fi
    done 2>/dev/null
  }
fi
signal_all() { for pid in $(tagged); do kill -"$1" "$pid" 2>/dev/null; done; }
wait_gone() {
  deadline=$(( $(date +%s) + $1 ))
  while [ -n "$(tagged)" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
}
[ -z "$(tagged)" ] && exit "${4:-0}"
signal_all INT; wait_gone "$2"
signal_all TERM; wait_gone "$3"
signal_all KILL; wait_gone 5
[ -n "$4" ] && exit "$4"
[ -z "$(tagged)" ]
"""

# The agent runs under this shell (argv: sh -c AFTER_AGENT name STOP_SCRIPT grace grace
# argv...), which, once the agent has exited, runs the stop script for what it left behind
# and exits with the agent's status (128+N for signal N, as the kubelet reports a signal).
# Its trap, unlike an ignored signal, is not inherited: the agent gets a stop script's
# signals as it would without this shell, and the shell goes on to reap once the agent has
# ended. It drops the tag before it execs the stop script, which would find itself. Its
# variables start with AGENT_GATEWAY_, like the launcher's: a container's own variables
# (which the agent inherits) are never overwritten.
AFTER_AGENT = r"""
trap : INT TERM
AGENT_GATEWAY_STOP=$1 AGENT_GATEWAY_INT_S=$2 AGENT_GATEWAY_TERM_S=$3
shift 3
"$@"
AGENT_GATEWAY_CODE=$?
AGENT_GATEWAY_TAG=$AGENT_GATEWAY_PROCESS_TAG
unset AGENT_GATEWAY_PROCESS_TAG
exec sh -c "$AGENT_GATEWAY_STOP" sh "$AGENT_GATEWAY_TAG" "$AGENT_GATEWAY_INT_S" \
  "$AGENT_GATEWAY_TERM_S" "$AGENT_GATEWAY_CODE"
"""


class ExecProcess:
    """AgentProcess for one exec. A reader task takes its frames; output waits in a bounded
    queue, so a flooding agent is held back (the socket is not read while it is full)."""

    QUEUE_CHUNKS = 64

    def __init__(
        self,
        socket: ExecSocket,
        stop_in_pod: Callable[[], Awaitable[None]],  # runs the stop script for this run
        stdin_open: bool = False,
    ) -> None:
        self._socket = socket
        self._stop_in_pod = stop_in_pod
        self._queue: asyncio.Queue[tuple[Channel, bytes] | None] = asyncio.Queue(self.QUEUE_CHUNKS)
        self._consumer_gone = False
        self._exited: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._failure: str | None = None
        self._stop_lock = asyncio.Lock()
        self._stop_sent = False
        # An interactive agent's further input, in order; None closes stdin.
        self._stdin: asyncio.Queue[bytes | None] | None = asyncio.Queue() if stdin_open else None
        self._writer = asyncio.create_task(self._write()) if stdin_open else None
        self._reader = asyncio.create_task(self._read())

    @property
    def exited(self) -> asyncio.Future[int | None]:
        """Done once the exec has ended (its exit code, None if unknown)."""
        return self._exited

    async def _read(self) -> None:
        code: int | None = None
        try:
            status = bytearray()
            async for channel, data in self._socket.frames():
                if channel == STDOUT:
                    await self._hand_over(("stdout", data))
                elif channel == STDERR:
                    await self._hand_over(("stderr", data))
                elif channel == STATUS:
                    status += data
            code, self._failure = parse_status(bytes(status))
        except ExecLost as exc:
            log.warning("exec in pod %s lost: %s; stopping its processes", self._socket.target, exc)
            self._failure = f"exec in pod {self._socket.target} lost ({exc}): exit status unknown"
            await self._stop_once()
        finally:
            if self._writer is not None:
                self._writer.cancel()
            await self._hand_over(None)
            if not self._exited.done():
                self._exited.set_result(code)

    async def _write(self) -> None:
        assert self._stdin is not None
        try:
            while (data := await self._stdin.get()) is not None:
                await self._socket.write(data)
            await self._socket.close_stdin()
        except ExecFailed as exc:  # the reader sees the connection end and says why
            log.warning("%s", exc)

    async def _hand_over(self, item: tuple[Channel, bytes] | None) -> None:
        if not self._consumer_gone:
            await self._queue.put(item)

    async def output(self) -> AsyncGenerator[tuple[Channel, bytes], None]:
        try:
            while (item := await self._queue.get()) is not None:
                yield item
        finally:
            # The consumer is gone: never hold the reader back again.
            self._consumer_gone = True
            while not self._queue.empty():
                self._queue.get_nowait()

    def write(self, data: bytes) -> None:
        if self._stdin is not None:
            self._stdin.put_nowait(data)

    def close_stdin(self) -> None:
        if self._stdin is not None:
            self._stdin.put_nowait(None)
            self._stdin = None

    async def wait(self) -> int:
        code = await asyncio.shield(self._exited)
        if code is None:
            raise ProcessLost(self._failure or "exit status unknown")
        return code

    async def stop(self) -> None:
        """Stops every process of the run in the pod, then waits for the exec's status."""
        await self._stop_once()
        if not self._exited.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._exited), STATUS_AFTER_STOP_S)
            except TimeoutError:
                log.warning("exec in pod %s reported no status after stop", self._socket.target)
                self._socket.abort()
                await asyncio.shield(self._exited)

    async def _stop_once(self) -> None:
        async with self._stop_lock:  # a second caller waits for the stop under way
            # An exec that reported a status needs none: AFTER_AGENT stopped what was left.
            reported = self._exited.done() and self._exited.result() is not None
            if not self._stop_sent and not reported:
                self._stop_sent = True
                await self._stop_in_pod()

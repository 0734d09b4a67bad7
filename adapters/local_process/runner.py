"""Agent processes on this machine: one process group per run, argv only, never a shell."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import subprocess
from collections import deque
from collections.abc import AsyncGenerator, Mapping, Sequence
from pathlib import Path

from domain.errors import AgentStartFailed
from domain.model import Completed
from domain.templates import KubePlacement
from ports.process_runner import Channel

log = logging.getLogger(__name__)

# Every process a run starts inherits this variable; it finds the descendants that left the
# process group (the claude CLI starts tool processes with setsid) even after they were
# orphaned, so cancel and run end can kill them too.
TAG_VARIABLE = "AGENT_GATEWAY_PROCESS_TAG"

# Agents run this much nicer than the gateway, which streams for all of them: on a busy
# machine a hundred agents would otherwise delay every run's events (and /healthz). Where
# nothing else wants the CPU, they lose nothing.
AGENT_NICENESS = 10


class LocalProcessRunner:
    """ProcessRunner for local processes in `<workspace_root>/<project_id>`.

    Stop escalates SIGINT -> SIGTERM -> SIGKILL to the process group, waiting
    `interrupt_grace_s` and `terminate_grace_s`, then kills every tagged descendant."""

    def __init__(
        self,
        workspace_root: Path,
        interrupt_grace_s: float = 5.0,
        terminate_grace_s: float = 5.0,
        drain_s: float = 2.0,
    ) -> None:
        self._workspace_root = workspace_root
        self._interrupt_grace_s = interrupt_grace_s
        self._terminate_grace_s = terminate_grace_s
        self._drain_s = drain_s
        self._reaper = TaggedProcessReaper()

    def check(self, program: str) -> str | None:
        if shutil.which(program) is None:
            return f"{program!r} is not an executable file or on PATH"
        return None

    async def start(
        self,
        project_id: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        stdin: bytes = b"",
        keep_stdin_open: bool = False,
        secret_env: Mapping[str, str] | None = None,
        files: Mapping[str, bytes] | None = None,
        placement: KubePlacement | None = None,
    ) -> LocalProcess:
        cwd = self._workdir(project_id)
        for relative, content in (files or {}).items():
            path = cwd / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)  # only the agent's user: it may hold tokens
            path.write_bytes(content)
        tag = secrets.token_hex(16)
        try:
            popen = subprocess.Popen(  # noqa: ASYNC220 (fork+exec only; a pidfd watches exit)
                list(argv),
                cwd=cwd,
                env={**env, **(secret_env or {}), TAG_VARIABLE: tag},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group, signalled as one
            )
        except OSError as exc:
            raise AgentStartFailed(f"cannot start {argv[0]!r}: {exc}") from exc
        _lower_priority(popen.pid)
        process = LocalProcess(
            popen,
            tag,
            self._reaper,
            self._interrupt_grace_s,
            self._terminate_grace_s,
            self._drain_s,
        )
        await process.attach(stdin, keep_stdin_open)
        return process

    def _workdir(self, project_id: str) -> Path:
        cwd = self._workspace_root / project_id
        cwd.mkdir(parents=True, exist_ok=True)
        return cwd

    async def run(
        self,
        project_id: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        stdin: bytes = b"",
        placement: KubePlacement | None = None,
        timeout_s: float = 30.0,
        max_output: int = 1024 * 1024,
    ) -> Completed:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=self._workdir(project_id),
                env=dict(env),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            raise AgentStartFailed(f"cannot start {argv[0]!r}: {exc}") from exc
        assert process.stdin is not None and process.stdout is not None
        pipe = process.stdin

        async def write_stdin() -> None:
            pipe.write(stdin)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await pipe.drain()  # a command may end without reading it all
            pipe.close()

        # Written beside the reading: a command may print a lot before it reads it all.
        writer = asyncio.create_task(write_stdin())
        try:
            async with asyncio.timeout(timeout_s):
                stdout = bytearray()
                while chunk := await process.stdout.read(64 * 1024):
                    stdout += chunk
                    if len(stdout) > max_output:
                        raise AgentStartFailed(f"{argv[0]!r} printed over {max_output} bytes")
                return Completed(await process.wait(), bytes(stdout))
        except TimeoutError:
            raise AgentStartFailed(f"{argv[0]!r} did not end within {timeout_s:g} s") from None
        finally:
            writer.cancel()
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)  # its own session: the whole group
                await process.wait()


def _lower_priority(pid: int) -> None:
    """Makes a just started agent (and so whatever it starts) AGENT_NICENESS nicer than the
    gateway. Its own session is also its own autogroup where the kernel groups tasks by
    session: there that group's nice is what weighs against the gateway's, so it is set too.
    Unprivileged, the kernel takes that at most every 100 ms (EAGAIN otherwise); a kernel
    without autogroups has no such file. Both are best effort: an agent at the usual
    priority still runs correctly."""
    nice = min(os.getpriority(os.PRIO_PROCESS, 0) + AGENT_NICENESS, 19)
    with contextlib.suppress(OSError):  # it may have exited already
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    with contextlib.suppress(OSError), open(f"/proc/{pid}/autogroup", "w") as autogroup:
        autogroup.write(str(nice))


class LocalProcess:
    """AgentProcess for a local child. Exit is watched through a pidfd, not through the
    pipes: asyncio's Process.wait() on 3.11 also waits for pipe EOF, which a setsid
    descendant holding stdout can delay forever."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        tag: str,
        reaper: TaggedProcessReaper,
        interrupt_grace_s: float,
        terminate_grace_s: float,
        drain_s: float,
    ) -> None:
        self._popen = popen
        self._tag = tag
        self._reaper = reaper
        self._grace = (interrupt_grace_s, terminate_grace_s)
        self._drain_s = drain_s
        self._exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._output = _OutputBuffer()
        self._stop_lock = asyncio.Lock()
        self.pid = popen.pid
        self._stdin: asyncio.WriteTransport | None = None  # open for an interactive agent

    async def attach(self, stdin: bytes, keep_stdin_open: bool = False) -> None:
        loop = asyncio.get_running_loop()
        # The transport writes without blocking and closes the pipe once all is written.
        writer, _ = await loop.connect_write_pipe(asyncio.Protocol, self._popen.stdin)
        writer.write(stdin)
        if keep_stdin_open:
            self._stdin = writer
        else:
            writer.close()
        pidfd = os.pidfd_open(self._popen.pid)

        def on_exit() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            code = self._popen.wait()  # already exited: reaps without blocking
            if not self._exited.done():
                self._exited.set_result(code)
            self._output.wake.set()

        loop.add_reader(pidfd, on_exit)
        for channel, pipe in (("stdout", self._popen.stdout), ("stderr", self._popen.stderr)):
            await loop.connect_read_pipe(
                lambda c=channel: _PipeProtocol(c, self._output),  # type: ignore[misc]
                pipe,
            )

    async def output(self) -> AsyncGenerator[tuple[Channel, bytes], None]:
        buffer = self._output
        deadline: float | None = None
        loop = asyncio.get_running_loop()
        try:
            while True:
                if buffer.chunks:
                    for item in buffer.take():
                        yield item
                    continue
                if buffer.open_pipes == 0:
                    return
                buffer.wake.clear()
                if not self._exited.done():
                    await buffer.wake.wait()
                    continue
                if deadline is None:
                    deadline = loop.time() + self._drain_s
                try:
                    await asyncio.wait_for(buffer.wake.wait(), max(deadline - loop.time(), 0))
                except TimeoutError:
                    log.warning("pid %d exited; its pipes stayed open, stop reading", self.pid)
                    return
        finally:
            buffer.close()

    def write(self, data: bytes) -> None:
        if self._stdin is not None and not self._stdin.is_closing():
            self._stdin.write(data)  # a dead reader's EPIPE closes the transport, quietly

    def close_stdin(self) -> None:
        if self._stdin is not None:
            self._stdin.close()  # once what was written has gone out

    async def wait(self) -> int:
        code = await asyncio.shield(self._exited)
        return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as shells say

    async def stop(self) -> None:
        async with self._stop_lock:
            try:
                if not self._exited.done():
                    await self._escalate()
            finally:
                await self._reaper.kill(self._tag)

    async def _escalate(self) -> None:
        interrupt_grace, terminate_grace = self._grace
        for sig, grace in ((signal.SIGINT, interrupt_grace), (signal.SIGTERM, terminate_grace)):
            self._signal_group(sig)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._exited), grace)
                return
        self._signal_group(signal.SIGKILL)
        await self._reaper.kill(self._tag)
        await asyncio.shield(self._exited)

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, sig)


class _OutputBuffer:
    """stdout and stderr chunks in arrival order, shared by the two pipe protocols. Reading
    pauses while more than PAUSE_AT bytes wait, so a flooding agent blocks on its pipe
    instead of growing the gateway's memory."""

    PAUSE_AT = 1024 * 1024

    def __init__(self) -> None:
        self.chunks: deque[tuple[Channel, bytes]] = deque()
        self.size = 0
        self.open_pipes = 0
        self.wake = asyncio.Event()
        self.transports: list[asyncio.ReadTransport] = []
        self.paused = False

    def append(self, channel: Channel, data: bytes) -> None:
        self.chunks.append((channel, data))
        self.size += len(data)
        if self.size > self.PAUSE_AT and not self.paused:
            self.paused = True
            for transport in self.transports:
                transport.pause_reading()
        self.wake.set()

    def take(self) -> list[tuple[Channel, bytes]]:
        items = list(self.chunks)
        self.chunks.clear()
        self.size = 0
        if self.paused:
            self.paused = False
            for transport in self.transports:
                if not transport.is_closing():
                    transport.resume_reading()
        return items

    def close(self) -> None:
        for transport in self.transports:
            transport.close()


class _PipeProtocol(asyncio.Protocol):
    def __init__(self, channel: Channel, buffer: _OutputBuffer) -> None:
        self._channel = channel
        self._buffer = buffer
        self._open = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._buffer.transports.append(transport)  # type: ignore[arg-type] (uvloop's type)
        self._buffer.open_pipes += 1
        self._open = True

    def data_received(self, data: bytes) -> None:
        self._buffer.append(self._channel, data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._open:
            self._open = False
            self._buffer.open_pipes -= 1
            self._buffer.wake.set()


class TaggedProcessReaper:
    """Kills every process whose environment carries a given run tag.

    One pass over /proc costs a read per process, so requests that arrive while a pass is
    running share the next one: a hundred runs ending together cost a few passes, not a
    hundred; passes start at most every SWEEP_GAP_S. They run in a worker thread, off the
    event loop."""

    SWEEP_GAP_S = 0.05

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._last_sweep = -1e9  # loop time

    async def kill(self, tag: str) -> None:
        future = self._waiting.get(tag)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._waiting[tag] = future
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        await asyncio.shield(future)

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                # Runs that end together share passes: a pass waits a moment for them.
                await asyncio.sleep(max(self._last_sweep + self.SWEEP_GAP_S - loop.time(), 0))
                batch, self._waiting = self._waiting, {}
                self._last_sweep = loop.time()
                try:
                    await asyncio.to_thread(_kill_tagged, set(batch))
                except Exception as exc:
                    for future in batch.values():
                        future.set_exception(exc)
                else:
                    for future in batch.values():
                        future.set_result(None)
        finally:
            self._sweeper = None


def _kill_tagged(tags: set[str]) -> int:
    """SIGKILLs every process whose environment carries one of these tags; returns how many."""
    wanted = {tag.encode() for tag in tags}
    marker = f"\0{TAG_VARIABLE}=".encode()
    killed = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as environ:
                data = b"\0" + environ.read()
            start = data.find(marker)  # one search in C, whatever the number of tags
            if start < 0:
                continue
            start += len(marker)
            end = data.find(b"\0", start)
            if data[start : end if end >= 0 else len(data)] not in wanted:
                continue
            os.kill(int(entry.name), signal.SIGKILL)
            killed += 1
        except (OSError, ValueError):
            continue  # gone, or not ours to read
    return killed

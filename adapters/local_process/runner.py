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
from collections.abc import AsyncGenerator, Mapping, Sequence
from pathlib import Path

from domain.errors import ProviderUnavailable
from ports.process_runner import Channel

log = logging.getLogger(__name__)

# Every process a run starts inherits this variable; it finds the descendants that left the
# process group (the claude CLI starts tool processes with setsid) even after they were
# orphaned, so cancel and run end can kill them too.
TAG_VARIABLE = "AGENT_GATEWAY_PROCESS_TAG"
READ_SIZE = 64 * 1024


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

    def check(self, program: str) -> str | None:
        if shutil.which(program) is None:
            return f"{program!r} is not an executable file or on PATH"
        return None

    async def start(
        self, project_id: str, argv: Sequence[str], env: Mapping[str, str]
    ) -> LocalProcess:
        cwd = self._workspace_root / project_id
        cwd.mkdir(parents=True, exist_ok=True)
        tag = secrets.token_hex(16)
        try:
            popen = subprocess.Popen(  # noqa: ASYNC220 (fork+exec only; a pidfd watches exit)
                list(argv),
                cwd=cwd,
                env={**env, TAG_VARIABLE: tag},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group, signalled as one
            )
        except OSError as exc:
            raise ProviderUnavailable(argv[0], f"cannot start {argv[0]!r}: {exc}") from exc
        process = LocalProcess(
            popen, tag, self._interrupt_grace_s, self._terminate_grace_s, self._drain_s
        )
        await process.attach()
        return process


class LocalProcess:
    """AgentProcess for a local child. Exit is watched through a pidfd, not through the
    pipes: asyncio's Process.wait() on 3.11 also waits for pipe EOF, which a setsid
    descendant holding stdout can delay forever."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        tag: str,
        interrupt_grace_s: float,
        terminate_grace_s: float,
        drain_s: float,
    ) -> None:
        self._popen = popen
        self._tag = tag
        self._grace = (interrupt_grace_s, terminate_grace_s)
        self._drain_s = drain_s
        self._exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._readers: dict[Channel, asyncio.StreamReader] = {}
        self._transports: list[asyncio.BaseTransport] = []
        self._stop_lock = asyncio.Lock()
        self.pid = popen.pid

    async def attach(self) -> None:
        loop = asyncio.get_running_loop()
        pidfd = os.pidfd_open(self._popen.pid)

        def on_exit() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            code = self._popen.wait()  # already exited: reaps without blocking
            if not self._exited.done():
                self._exited.set_result(code)

        loop.add_reader(pidfd, on_exit)
        for channel, pipe in (("stdout", self._popen.stdout), ("stderr", self._popen.stderr)):
            reader = asyncio.StreamReader(limit=READ_SIZE * 4)
            transport, _ = await loop.connect_read_pipe(
                lambda r=reader: asyncio.StreamReaderProtocol(r), pipe
            )
            self._readers[channel] = reader  # type: ignore[index]
            self._transports.append(transport)

    async def output(self) -> AsyncGenerator[tuple[Channel, bytes], None]:
        reads: dict[asyncio.Task[bytes], Channel] = {
            asyncio.ensure_future(reader.read(READ_SIZE)): channel
            for channel, reader in self._readers.items()
        }
        deadline: float | None = None
        loop = asyncio.get_running_loop()
        try:
            while reads:
                if deadline is None and self._exited.done():
                    deadline = loop.time() + self._drain_s
                waiting: set[asyncio.Future[object]] = set(reads)  # type: ignore[arg-type]
                if deadline is None:
                    waiting.add(self._exited)  # type: ignore[arg-type]
                timeout = None if deadline is None else max(deadline - loop.time(), 0)
                done, _ = await asyncio.wait(
                    waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    log.warning("pid %d exited; its pipes stayed open, stop reading", self.pid)
                    return
                for task in [t for t in done if t in reads]:
                    channel = reads.pop(task)  # type: ignore[call-overload]
                    chunk = task.result()  # type: ignore[union-attr]
                    if chunk:
                        yield channel, chunk
                        reads[asyncio.ensure_future(self._readers[channel].read(READ_SIZE))] = (
                            channel
                        )
        finally:
            for task in reads:
                task.cancel()
            for transport in self._transports:
                transport.close()

    async def wait(self) -> int | None:
        code = await asyncio.shield(self._exited)
        return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as shells say

    async def stop(self) -> None:
        async with self._stop_lock:
            try:
                if not self._exited.done():
                    await self._escalate()
            finally:
                _kill_tagged(self._tag)

    async def _escalate(self) -> None:
        interrupt_grace, terminate_grace = self._grace
        for sig, grace in ((signal.SIGINT, interrupt_grace), (signal.SIGTERM, terminate_grace)):
            self._signal_group(sig)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._exited), grace)
                return
        self._signal_group(signal.SIGKILL)
        _kill_tagged(self._tag)
        await asyncio.shield(self._exited)

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, sig)


def _kill_tagged(tag: str) -> int:
    """SIGKILLs every process whose environment carries this run's tag; returns how many."""
    marker = f"{TAG_VARIABLE}={tag}".encode()
    killed = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as environ:
                if marker not in environ.read().split(b"\0"):
                    continue
            os.kill(int(entry.name), signal.SIGKILL)
            killed += 1
        except (OSError, ValueError):
            continue  # gone, or not ours to read
    return killed

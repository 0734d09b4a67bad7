from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Literal, Protocol

from domain.model import Completed
from domain.templates import KubePlacement

Channel = Literal["stdout", "stderr"]


class AgentProcess(Protocol):
    """A started agent process (local, or inside a pod).

    Guarantees: `output` yields (channel, bytes) chunks in arrival order per channel and ends
    once the process has exited and its pipes are drained (a descendant holding a pipe open
    cannot keep it going past a bounded drain time). `stop` asks the process and every
    descendant to stop (interrupt, then terminate, then kill after grace periods) and returns
    only once the process has exited; it is idempotent. `wait` returns the exit code (128 + N
    if killed by signal N), or raises ProcessLost with the reason when it cannot be known.
    A process started with `keep_stdin_open` takes more input by `write` (in order, without
    blocking) until `close_stdin`; writing to a process whose stdin is closed or that has
    exited does nothing."""

    def output(self) -> AsyncGenerator[tuple[Channel, bytes], None]: ...

    async def stop(self) -> None: ...

    async def wait(self) -> int: ...

    def write(self, data: bytes) -> None: ...

    def close_stdin(self) -> None: ...


class ProcessRunner(Protocol):
    """Starts agent processes: argv only (never a shell), in the project's working directory,
    with exactly the given environment plus `secret_env`, `stdin` written to the process and
    then closed (unless `keep_stdin_open`). `secret_env` never shows in an argv, a request
    URL or a log (a runner may forward `env` that way). `files` (relative path -> content)
    are written into the working directory first, never through an argv either.
    `placement` says which pod, for a runner of pods (others ignore it). Raises
    AgentStartFailed if the program cannot be started (not found, no pod) or the runner
    cannot keep stdin open."""

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
    ) -> AgentProcess: ...

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
        """Runs a short helper command where the project's agents run (same working
        directory, same pod, argv only), `stdin` written and closed, to its end; stderr is
        dropped. Raises AgentStartFailed if it cannot be started, does not end within
        `timeout_s` (it is then stopped) or prints more than `max_output` bytes."""
        ...

    def check(self, program: str) -> str | None:
        """Why `program` cannot be started, or None if it can."""
        ...

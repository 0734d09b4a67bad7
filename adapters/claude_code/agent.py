"""Claude Code: the `claude` CLI in stream-json mode, on whatever ProcessRunner it is given."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence

from adapters.claude_code.stream_json import StreamJsonParser
from domain.errors import InputNotAccepted
from domain.lines import LineDecoder
from domain.model import (
    AgentEvent,
    AgentInput,
    AgentRequest,
    Capabilities,
    OutputEvent,
    OutputType,
)
from ports.process_runner import AgentProcess, ProcessRunner

INSTALL_HINT = (
    "install it with `npm install -g @anthropic-ai/claude-code` or set "
    "AGENT_GATEWAY_CLAUDE_COMMAND to its path"
)


class ClaudeCodeAgent:
    """CodeAgent for the Claude Code CLI in print mode; the prompt goes on stdin, verbatim."""

    def __init__(
        self,
        runner: ProcessRunner,
        command: Sequence[str],
        env: Mapping[str, str],
        permission_mode: str = "bypassPermissions",
    ) -> None:
        self._runner = runner
        self._command = list(command)
        self._env = dict(env)
        self._permission_mode = permission_mode

    def build_argv(self, request: AgentRequest) -> list[str]:
        # The prompt goes on stdin, not in argv: Linux caps one argument at 128 KiB, and a
        # prompt in argv shows in `ps` and, for pods, in the exec URL and audit logs.
        argv = [*self._command, "-p", "--output-format", "stream-json"]
        argv += ["--verbose", "--include-partial-messages"]
        argv += ["--permission-mode", self._permission_mode]
        if request.session_id:
            argv += ["--resume", request.session_id]
        if request.model:
            argv += ["--model", request.model]
        return argv

    def capabilities(self) -> Capabilities:
        problem = self._runner.check(self._command[0])
        return Capabilities(
            available=problem is None,
            detail=f"{problem}; {INSTALL_HINT}" if problem else f"runs {self._command[0]!r}",
            streaming=True,
            resume=True,
            cancel=True,
            token_usage=True,
        )

    async def start(self, run_id: str, request: AgentRequest) -> ClaudeCodeRun:
        env = dict(self._env)
        if self._permission_mode == "bypassPermissions":
            # The CLI refuses this mode as root unless IS_SANDBOX is exactly "1"; choosing
            # the mode is the operator's statement that the pod is the sandbox.
            env["IS_SANDBOX"] = "1"
        process = await self._runner.start(
            request.project_id, self.build_argv(request), env, request.prompt.encode()
        )
        return ClaudeCodeRun(process)


class ClaudeCodeRun:
    """AgentRun of one CLI process: its stdout parsed as stream-json, stderr as lines."""

    def __init__(self, process: AgentProcess) -> None:
        self._process = process

    async def events(self) -> AsyncGenerator[AgentEvent, None]:
        parser = StreamJsonParser()
        stderr = LineDecoder()
        try:
            async for channel, chunk in self._process.output():
                if channel == "stdout":
                    for event in parser.feed(chunk):
                        yield event
                else:
                    for line in stderr.feed(chunk):
                        yield OutputEvent(OutputType.STDERR, line)
            for event in parser.finish():
                yield event
            for line in stderr.finish():
                yield OutputEvent(OutputType.STDERR, line)
            yield parser.agent_result(await self._process.wait())
        finally:
            await self._process.stop()  # also kills what the agent left behind

    async def send(self, agent_input: AgentInput) -> None:
        raise InputNotAccepted("this run takes no input: Claude Code runs in print mode")

    async def stop(self) -> None:
        await self._process.stop()

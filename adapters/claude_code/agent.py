"""Claude Code: the `claude` CLI in stream-json mode, on whatever ProcessRunner it is given."""

from __future__ import annotations

import functools
import secrets
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from typing import Any

from adapters.claude_code.stream_json import StreamJsonParser
from adapters.claude_code.transcripts import TranscriptKeeper
from adapters.stored_json import dumps
from domain.errors import InputNotAccepted
from domain.lines import LineDecoder
from domain.model import (
    AgentEvent,
    AgentInput,
    AgentRequest,
    Capabilities,
    Close,
    InputAnswer,
    InputRequestEvent,
    InputResolvedEvent,
    Interrupt,
    OutputEvent,
    OutputType,
    UserMessage,
)
from ports.process_runner import AgentProcess, ProcessRunner

INSTALL_HINT = (
    "install it with `npm install -g @anthropic-ai/claude-code` or set "
    "AGENT_GATEWAY_CLAUDE_COMMAND to its path"
)


class ClaudeCodeAgent:
    """CodeAgent for the Claude Code CLI in print mode; the prompt goes on stdin, verbatim.

    An interactive run speaks the CLI's headless control protocol on stdin and stdout
    (`--input-format stream-json --permission-prompt-tool stdio`): each user turn is a JSON
    line, the CLI's permission requests come as `control_request` lines and are answered by
    `control_response` lines, and the process lives until its stdin is closed."""

    def __init__(
        self,
        runner: ProcessRunner,
        command: Sequence[str],
        env: Mapping[str, str],
        permission_mode: str = "bypassPermissions",
        transcripts: TranscriptKeeper | None = None,
    ) -> None:
        """`transcripts`: keeps sessions where the CLI's own disk does not last (pods)."""
        self._runner = runner
        self._command = list(command)
        self._env = dict(env)
        self._permission_mode = permission_mode
        self._transcripts = transcripts

    def build_argv(self, request: AgentRequest, mcp_config: str | None = None) -> list[str]:
        """`mcp_config`: the path (in the working directory) of the request's MCP servers."""
        # The prompt goes on stdin, not in argv: Linux caps one argument at 128 KiB, and a
        # prompt in argv shows in `ps` and, for pods, in the exec URL and audit logs.
        argv = [*self._command, "-p", "--output-format", "stream-json"]
        argv += ["--verbose", "--include-partial-messages"]
        if request.interactive:
            argv += ["--input-format", "stream-json", "--permission-prompt-tool", "stdio"]
        argv += ["--permission-mode", self.permission_mode(request)]
        if request.session_id:
            argv += ["--resume", request.session_id]
        if request.model:
            argv += ["--model", request.model]
        if request.append_system_prompt is not None:
            argv += ["--append-system-prompt", request.append_system_prompt]
        # One comma-separated argument each: the options take several values, and a list
        # of arguments would swallow what follows.
        if request.allowed_tools:
            argv += ["--allowedTools", ",".join(request.allowed_tools)]
        if request.disallowed_tools:
            argv += ["--disallowedTools", ",".join(request.disallowed_tools)]
        if request.max_turns is not None:
            argv += ["--max-turns", str(request.max_turns)]
        if request.max_budget_usd is not None:
            argv += ["--max-budget-usd", f"{request.max_budget_usd:g}"]
        if mcp_config is not None:
            argv += ["--mcp-config", mcp_config]
        return argv

    def permission_mode(self, request: AgentRequest) -> str:
        return request.permission_mode or self._permission_mode

    def capabilities(self) -> Capabilities:
        program = self._command[0]
        problem = self._runner.check(program)
        detail = problem or f"runs {program!r}"
        if problem and program in problem:  # the CLI is missing, not the cluster
            detail = f"{problem}; {INSTALL_HINT}"
        return Capabilities(
            available=problem is None,
            detail=detail,
            streaming=True,
            resume=True,
            cancel=True,
            token_usage=True,
        )

    async def start(
        self, run_id: str, request: AgentRequest, secret_env: Mapping[str, str]
    ) -> ClaudeCodeRun:
        env = dict(self._env)
        if self.permission_mode(request) == "bypassPermissions":
            # The CLI refuses this mode as root unless IS_SANDBOX is exactly "1"; choosing
            # the mode is the operator's statement that the pod is the sandbox.
            env["IS_SANDBOX"] = "1"
        # MCP server configurations may hold tokens: a file in the workspace, not argv.
        files, mcp_config = {}, None
        if request.mcp_servers is not None:
            mcp_config = f".agent-gateway/mcp-{run_id}.json"
            files[mcp_config] = dumps(dict(request.mcp_servers))
        argv = self.build_argv(request, mcp_config)
        options = {"secret_env": secret_env, "files": files, "placement": request.kube}
        keep = None
        if self._transcripts is not None:
            if request.session_id:
                await self._transcripts.restore(
                    request.project_id, request.session_id, request.kube
                )
            keep = functools.partial(
                self._transcripts.save, request.project_id, placement=request.kube
            )
        if not request.interactive:
            process = await self._runner.start(
                request.project_id, argv, env, request.prompt.encode(), **options
            )
            return ClaudeCodeRun(process, interactive=False, keep=keep)
        first_turn = user_line(UserMessage(request.prompt))
        process = await self._runner.start(
            request.project_id, argv, env, first_turn, keep_stdin_open=True, **options
        )
        return ClaudeCodeRun(process, interactive=True, keep=keep)


def _line(message: dict[str, Any]) -> bytes:
    """One JSON line for the CLI's stdin."""
    return dumps(message) + b"\n"


def user_line(message: UserMessage) -> bytes:
    line: dict[str, Any] = {
        "type": "user",
        "message": {"role": "user", "content": message.text},
        "parent_tool_use_id": None,
        "session_id": "default",
    }
    if message.now:  # ends the turn under way and runs at once
        line["priority"] = "now"
    return _line(line)


def answer_line(answer: InputAnswer, request: InputRequestEvent | None) -> bytes:
    """The CLI takes an allow only with `updatedInput` (a missing one counts as a denial):
    the original input, or the caller's, plus the answers to a question."""
    if answer.allow:
        updated = dict(answer.updated_input or (request.input if request else {}))
        if answer.answers:
            updated["answers"] = dict(answer.answers)
        response: dict[str, Any] = {"behavior": "allow", "updatedInput": updated}
    else:
        response = {"behavior": "deny", "message": answer.message or "denied by the user"}
    return _line(
        {
            "type": "control_response",
            "response": {
                "subtype": "success",
                "request_id": answer.request_id,
                "response": response,
            },
        }
    )


def error_line(request_id: str, message: str) -> bytes:
    return _line(
        {
            "type": "control_response",
            "response": {"subtype": "error", "request_id": request_id, "error": message},
        }
    )


class ClaudeCodeRun:
    """AgentRun of one CLI process: its stdout parsed as stream-json, stderr as lines."""

    def __init__(
        self,
        process: AgentProcess,
        interactive: bool,
        keep: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        """`keep(session_id)` runs once the CLI has ended, before its result is told."""
        self._process = process
        self._interactive = interactive
        self._keep = keep
        self._requests: dict[str, InputRequestEvent] = {}  # open, by request id

    async def events(self) -> AsyncGenerator[AgentEvent, None]:
        parser = StreamJsonParser(interactive=self._interactive)
        stderr = LineDecoder()
        try:
            async for channel, chunk in self._process.output():
                if channel == "stdout":
                    for event in parser.feed(chunk):
                        if isinstance(event, InputRequestEvent):
                            self._requests[event.request_id] = event
                        elif isinstance(event, InputResolvedEvent):
                            self._requests.pop(event.request_id, None)
                        yield event
                    for request_id in parser.unanswerable:  # never leave the CLI waiting
                        self._process.write(error_line(request_id, "not supported"))
                    parser.unanswerable.clear()
                else:
                    for line in stderr.feed(chunk):
                        yield OutputEvent(OutputType.STDERR, line)
            for event in parser.finish():
                yield event
            for line in stderr.finish():
                yield OutputEvent(OutputType.STDERR, line)
            result = parser.agent_result(await self._process.wait())
            if self._keep is not None and result.outcome.session_id:
                await self._keep(result.outcome.session_id)
            yield result
        finally:
            await self._process.stop()  # also kills what the agent left behind

    async def send(self, agent_input: AgentInput) -> None:
        if not self._interactive:
            raise InputNotAccepted("this run takes no input: it was not started interactive")
        if isinstance(agent_input, InputAnswer):
            request = self._requests.pop(agent_input.request_id, None)
            self._process.write(answer_line(agent_input, request))
        elif isinstance(agent_input, UserMessage):
            self._process.write(user_line(agent_input))
        elif isinstance(agent_input, Interrupt):
            interrupt = {"subtype": "interrupt"}
            request_id = secrets.token_hex(8)
            self._process.write(
                _line({"type": "control_request", "request_id": request_id, "request": interrupt})
            )
        elif isinstance(agent_input, Close):
            self._process.close_stdin()  # the CLI ends after the turn under way

    async def stop(self) -> None:
        await self._process.stop()

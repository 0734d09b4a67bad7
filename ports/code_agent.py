from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Protocol

from domain.model import AgentEvent, AgentInput, AgentRequest, Capabilities


class AgentRun(Protocol):
    """One execution of an agent, started by CodeAgent.start.

    Guarantees of every implementation:
    - `events()` is iterated once: OutputEvent/ErrorEvent in the order the agent produced
      them, then exactly one AgentResult, last. Malformed agent output becomes `unparsed`
      output, not an exception. Closing the iterator early stops the agent.
    - `send(input)` hands the agent an answer, a message or an interrupt; an execution that
      takes no such input raises InputNotAccepted.
    - `stop()` asks the agent to stop, escalates to a kill after a grace period, and returns
      only once the agent has stopped, after which `events()` ends with its AgentResult.
      It is idempotent, and a no-op once the agent has ended.
    """

    def events(self) -> AsyncGenerator[AgentEvent, None]: ...

    async def send(self, agent_input: AgentInput) -> None: ...

    async def stop(self) -> None: ...


class CodeAgent(Protocol):
    """A coding agent the gateway runs on behalf of a project.

    Guarantees of every implementation:
    - `start` starts the agent and returns its execution; it raises AgentStartFailed if the
      agent cannot start (then nothing is left running). `secret_env` are the project's
      credentials, variable -> value: an agent that runs a process gives them to it as
      environment variables (never in an argv, a URL or a log); others ignore them.
    - `capabilities()` is cheap and never raises; `available=False` says why in `detail`.
    """

    async def start(
        self, run_id: str, request: AgentRequest, secret_env: Mapping[str, str]
    ) -> AgentRun: ...

    def capabilities(self) -> Capabilities: ...

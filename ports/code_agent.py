from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol

from domain.model import AgentEvent, AgentRequest, Capabilities


class CodeAgent(Protocol):
    """A coding agent the gateway runs on behalf of a project.

    Guarantees of every implementation:
    - `execute` starts the agent and returns its events; it raises ProviderUnavailable if
      the agent cannot start (then nothing is left running). The events are OutputEvent/
      ErrorEvent in the order the agent produced them, then exactly one AgentResult, last.
      Malformed agent output becomes `unparsed` output, not an exception. Closing the
      iterator early stops the agent.
    - `cancel(run_id)` asks the agent to stop, escalates to a kill after a grace period, and
      returns only once the agent has stopped, after which `execute` ends with its
      AgentResult. Cancelling an unknown or finished run is a no-op (idempotent).
    - `capabilities()` is cheap and never raises; `available=False` says why in `detail`.
    """

    async def execute(
        self, run_id: str, request: AgentRequest
    ) -> AsyncGenerator[AgentEvent, None]: ...

    async def cancel(self, run_id: str) -> None: ...

    def capabilities(self) -> Capabilities: ...

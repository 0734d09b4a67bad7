"""The provider registry: named CodeAgents in registration order; the first is the default."""

from __future__ import annotations

import threading

from domain.errors import InvalidRequest, UnknownProvider
from domain.model import Capabilities
from ports.code_agent import CodeAgent


class ProviderRegistry:
    """Thread-safe map of provider name to agent. Registration order is kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._agents: dict[str, CodeAgent] = {}

    def register(self, name: str, agent: CodeAgent) -> None:
        with self._lock:
            if name in self._agents:
                raise InvalidRequest("provider", f"provider {name!r} is already registered")
            self._agents[name] = agent

    def get(self, name: str) -> CodeAgent:
        with self._lock:
            agent = self._agents.get(name)
            if agent is None:
                raise UnknownProvider(name, list(self._agents))
            return agent

    def default_name(self) -> str:
        with self._lock:
            if not self._agents:
                raise UnknownProvider("<default>", [])
            return next(iter(self._agents))

    def names(self) -> list[str]:
        with self._lock:
            return list(self._agents)

    def describe(self) -> list[tuple[str, bool, Capabilities]]:
        """(name, is_default, capabilities) for every provider, in registration order."""
        with self._lock:
            agents = list(self._agents.items())
        return [(name, i == 0, agent.capabilities()) for i, (name, agent) in enumerate(agents)]

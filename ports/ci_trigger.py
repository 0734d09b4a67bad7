from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from domain.woodpecker import PipelineStarted


class CiTrigger(Protocol):
    """Starts a manual pipeline of a repository on a CI server.

    Guarantees: returns the started pipeline, or raises CiTriggerFailed saying why (the
    repository is unknown, the token is refused, the server cannot be reached), within a
    bounded time."""

    async def start_pipeline(
        self, url: str, repo: str, branch: str, variables: Mapping[str, str], token: str
    ) -> PipelineStarted: ...

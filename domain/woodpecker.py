"""The gateway drives CI: a template's or project's `woodpecker` block starts a manual
pipeline of a Woodpecker repository after each succeeded run of the project; the run record
and its stream say which (or why none)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from domain.errors import GatewayError

if TYPE_CHECKING:
    from domain.credentials import Credentials
    from domain.model import Run
    from ports.ci_trigger import CiTrigger

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WoodpeckerTarget:
    url: str  # the Woodpecker server
    repo: str  # owner/name
    token: str  # the name of a credential of the project: a personal access token
    branch: str = "main"
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PipelineStarted:
    number: int
    link: str
    status: str


class CiTriggerFailed(GatewayError):
    code = "ci_trigger_failed"


class PipelineTrigger:
    def __init__(self, ci: CiTrigger, credentials: Credentials) -> None:
        self._ci = ci
        self._credentials = credentials

    async def after_success(self, run: Run, target: WoodpeckerTarget) -> dict[str, Any]:
        """What the run record keeps of it: the pipeline's number, link and status, or the
        error (the run stays succeeded either way)."""
        token = await self._credentials.value_of(run.project_id, target.token)
        if token is None:
            return {"error": f"the project has no credential {target.token!r} (the token)"}
        variables = {**target.variables, "AGENT_GATEWAY_RUN_ID": run.run_id}
        try:
            started = await self._ci.start_pipeline(
                target.url, target.repo, target.branch, variables, token
            )
        except CiTriggerFailed as exc:
            log.warning("run %s: no pipeline: %s", run.run_id, exc.message)
            return {"error": exc.message}
        return {"number": started.number, "link": started.link, "status": started.status}

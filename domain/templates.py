"""Templates and projects: a project is configured once (its template, its overrides) and
each run says only what differs. A run's settings resolve field by field: the request, then
the project's overrides, then the template, then the deployment's defaults."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from domain.errors import Conflict, InvalidRequest, NotFound
from domain.webhooks import WebhookTarget, validate_target
from domain.woodpecker import WoodpeckerTarget

if TYPE_CHECKING:  # the ports name Template and Project
    from ports.clock import Clock
    from ports.project_store import ProjectStore
    from ports.template_store import TemplateStore


@dataclass(frozen=True, slots=True)
class KubePlacement:
    """Which pod runs the agent (the deployment's settings for what is None); `{project}`
    in `pod` and `selector` is the project id."""

    namespace: str | None = None
    pod: str | None = None
    selector: str | None = None
    container: str | None = None


@dataclass(frozen=True, slots=True)
class RunSettings:
    """What a request, a project's overrides or a template may set; None = not set here."""

    provider: tuple[str, ...] | None = None  # a name or a fallback chain
    model: str | None = None
    append_system_prompt: str | None = None
    allowed_tools: tuple[str, ...] | None = None
    disallowed_tools: tuple[str, ...] | None = None
    permission_mode: str | None = None
    interactive: bool | None = None
    max_turns: int | None = None
    timeout_s: int | None = None
    max_budget_usd: float | None = None
    mcp_servers: Mapping[str, Any] | None = None  # Claude Code's `--mcp-config` object
    priority: int | None = None
    metadata: Mapping[str, str] | None = None  # merged key by key, the nearer one wins
    credentials: tuple[str, ...] | None = None  # names the run requires; merged
    kube: KubePlacement | None = None  # merged field by field
    webhooks: tuple[WebhookTarget, ...] | None = None  # added up
    woodpecker: WoodpeckerTarget | None = None  # a pipeline after each succeeded run

    def over(self, base: RunSettings) -> RunSettings:
        """These settings, with what they leave unset taken from `base`."""
        merged = {}
        for item in fields(self):
            mine, theirs = getattr(self, item.name), getattr(base, item.name)
            merged[item.name] = theirs if mine is None else mine
        if self.metadata is not None and base.metadata is not None:
            merged["metadata"] = {**base.metadata, **self.metadata}
        if self.credentials is not None and base.credentials is not None:
            merged["credentials"] = tuple(dict.fromkeys(base.credentials + self.credentials))
        if self.webhooks is not None and base.webhooks is not None:
            merged["webhooks"] = tuple(dict.fromkeys(base.webhooks + self.webhooks))
        if self.kube is not None and base.kube is not None:
            kube = {f.name: getattr(self.kube, f.name) for f in fields(KubePlacement)}
            merged["kube"] = replace(base.kube, **{k: v for k, v in kube.items() if v is not None})
        return RunSettings(**merged)

    def as_record(self) -> dict[str, Any]:
        """What is set, as plain JSON values (templates and projects show it)."""
        record: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None:
                continue
            if isinstance(value, KubePlacement):
                value = {k: v for k, v in asdict(value).items() if v is not None}
            elif isinstance(value, WoodpeckerTarget):
                value = asdict(value)
            elif item.name == "webhooks":
                value = [asdict(w) for w in value]
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            record[item.name] = value
        return record

    def summary(self) -> dict[str, Any]:
        """What a run record shows it ran with: the MCP servers by name only (their
        configuration may hold tokens), webhooks without their URLs, CI without its URL."""
        record = self.as_record()
        if self.mcp_servers is not None:
            servers = self.mcp_servers.get("mcpServers")
            record["mcp_servers"] = sorted(servers) if isinstance(servers, Mapping) else []
        if self.webhooks is not None:  # a URL may hold a token; receivers see the record
            record["webhooks"] = [{"events": list(w.events)} for w in self.webhooks]
        if self.woodpecker is not None:
            record["woodpecker"] = {"repo": self.woodpecker.repo, "branch": self.woodpecker.branch}
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> RunSettings:
        values = with_nested_options(dict(record))
        for name in ("provider", "allowed_tools", "disallowed_tools", "credentials"):
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        return cls(**values)


def with_nested_options(values: dict[str, Any]) -> dict[str, Any]:
    """`kube`, `woodpecker` and `webhooks` of a stored record (a template's settings, a
    queued request) as their domain values, where present."""
    if values.get("kube") is not None:
        values["kube"] = KubePlacement(**values["kube"])
    if values.get("woodpecker") is not None:
        values["woodpecker"] = WoodpeckerTarget(**values["woodpecker"])
    if values.get("webhooks") is not None:
        values["webhooks"] = tuple(
            WebhookTarget(w["url"], tuple(w["events"]), w["secret"]) for w in values["webhooks"]
        )
    return values


NO_SETTINGS = RunSettings()


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    settings: RunSettings
    source: str  # "api", or the file it was read from (read-only then)
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Project:
    project_id: str
    template: str | None
    overrides: RunSettings
    updated_at: datetime


class TemplateCatalog:
    """The templates and projects use cases. Templates read from files (GitOps) are
    read-only here and win over stored ones of the same name."""

    def __init__(
        self,
        templates: TemplateStore,
        projects: ProjectStore,
        clock: Clock,
        from_files: Mapping[str, Template] | None = None,
        allow_private_webhooks: bool = False,
    ) -> None:
        self._templates = templates
        self._projects = projects
        self._clock = clock
        self._files = dict(from_files or {})
        self._allow_private = allow_private_webhooks
        for template in self._files.values():
            self._check_webhooks(template.settings)

    def _check_webhooks(self, settings: RunSettings) -> None:
        for target in settings.webhooks or ():
            validate_target(target.url, target.events, self._allow_private)

    async def put_template(self, name: str, settings: RunSettings) -> Template:
        validate_name("template", name)
        if name in self._files:
            raise Conflict(
                f"template {name!r} comes from {self._files[name].source}: change it there"
            )
        self._check_webhooks(settings)
        template = Template(name, settings, "api", self._clock.now())
        await self._templates.put_template(template)
        return template

    async def get_template(self, name: str) -> Template:
        template = self._files.get(name) or await self._templates.get_template(name)
        if template is None:
            raise NotFound(f"no template {name!r}")
        return template

    async def list_templates(self) -> list[Template]:
        stored = {t.name: t for t in await self._templates.list_templates()}
        merged = {**stored, **self._files}
        return [merged[name] for name in sorted(merged)]

    async def delete_template(self, name: str) -> None:
        if name in self._files:
            raise Conflict(
                f"template {name!r} comes from {self._files[name].source}: change it there"
            )
        in_use = [p.project_id for p in await self._projects.list_projects() if p.template == name]
        if in_use:
            raise Conflict(f"template {name!r} is used by {', '.join(in_use)}")
        if not await self._templates.delete_template(name):
            raise NotFound(f"no template {name!r}")

    async def put_project(
        self, project_id: str, template: str | None, overrides: RunSettings
    ) -> Project:
        if template is not None:
            try:
                await self.get_template(template)
            except NotFound:
                raise InvalidRequest("template", f"no template {template!r}") from None
        self._check_webhooks(overrides)
        project = Project(project_id, template, overrides, self._clock.now())
        await self._projects.put_project(project)
        return project

    async def get_project(self, project_id: str) -> Project:
        project = await self._projects.get_project(project_id)
        if project is None:
            raise NotFound(f"project {project_id!r} is not configured")
        return project

    async def list_projects(self) -> list[Project]:
        return await self._projects.list_projects()

    async def resolve(
        self, project_id: str, given: RunSettings, template_name: str | None = None
    ) -> tuple[RunSettings, str | None]:
        """The run's settings (the request's over the project's overrides over the
        template, the request's or else the project's; the deployment's defaults fill the
        rest later) and the template's name. An unknown template is InvalidRequest."""
        project = await self._projects.get_project(project_id)
        settings = given if project is None else given.over(project.overrides)
        name = template_name or (project.template if project else None)
        if name is None:
            return settings, None
        try:
            template = await self.get_template(name)
        except NotFound:
            raise InvalidRequest("template", f"no template {name!r}") from None
        return settings.over(template.settings), template.name


def validate_name(field: str, name: str) -> None:
    if not NAME.fullmatch(name):
        raise InvalidRequest(field, "1-63 of [a-z0-9-], starting and ending with a letter or digit")


NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")

"""Request and response bodies of the HTTP API (pydantic lives here, not in the domain)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

from domain.credentials import SealedCredential
from domain.model import (
    CREDENTIAL_NAME,
    MAX_BUDGET_USD,
    MAX_CHAIN,
    MAX_METADATA_ENTRIES,
    MAX_METADATA_VALUE_CHARS,
    MAX_NAME_CHARS,
    MAX_PRIORITY,
    MAX_SYSTEM_PROMPT_BYTES,
    MAX_TIMEOUT_S,
    MAX_TURNS,
    Capabilities,
    InputRequestEvent,
    Run,
    WaitingRun,
)
from domain.templates import KubePlacement, Project, RunSettings, Template
from domain.webhooks import Delivery, WebhookTarget
from domain.woodpecker import WoodpeckerTarget

Metadata = Annotated[
    dict[
        Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)],
        Annotated[str, Field(max_length=MAX_METADATA_VALUE_CHARS)],
    ],
    Field(max_length=MAX_METADATA_ENTRIES),
]
# A provider, model or session id may become a command-line argument: no control characters.
Name = Annotated[
    str, Field(min_length=1, max_length=MAX_NAME_CHARS, pattern=r"^[^\x00-\x1f\x7f]+$")
]


def _not_bool(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("must be an integer, not a boolean")
    return value


# Integers of the body: JSON's `true`/`false` are refused, not read as 1/0.
# (The constraints come first, or the OpenAPI document spells them `ge`/`le`.)
Seconds = Annotated[int, Field(ge=1, le=MAX_TIMEOUT_S), BeforeValidator(_not_bool)]
Priority = Annotated[int, Field(ge=-MAX_PRIORITY, le=MAX_PRIORITY), BeforeValidator(_not_bool)]


CredentialName = Annotated[str, Field(pattern=f"^{CREDENTIAL_NAME.pattern}$")]


class StartRunBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, description="what the agent should do; at most 1 MiB")
    provider: Name | Annotated[list[Name], Field(max_length=MAX_CHAIN)] | None = Field(
        None, description="provider name, or a fallback chain; default: the registry's default"
    )
    session_id: Name | None = None
    model: Name | None = None
    timeout_s: Seconds | None = None
    priority: Priority | None = Field(None, description="in the queue: higher first (0)")
    queue_timeout_s: Seconds | None = Field(None, description="how long it may wait queued")
    interactive: StrictBool | None = Field(
        None, description="keep the session open; permission requests come to the API (false)"
    )
    template: Name | None = Field(None, description="default: the project's template")
    permission_mode: Literal["default", "acceptEdits", "plan", "bypassPermissions"] | None = None
    credentials: Annotated[list[CredentialName], Field(max_length=MAX_METADATA_ENTRIES)] | None = (
        Field(
            None, description="names of the project's credentials the run requires (422 if missing)"
        )
    )
    metadata: Metadata | None = None

    def run_settings(self) -> RunSettings:
        """What the request sets (None: the project's, the template's or the default)."""
        return RunSettings(
            provider=_chain(self.provider),
            model=self.model,
            timeout_s=self.timeout_s,
            priority=self.priority,
            interactive=self.interactive,
            permission_mode=self.permission_mode,
            metadata=self.metadata,
            credentials=_tuple(self.credentials),
        )


def _chain(provider: str | list[str] | None) -> tuple[str, ...] | None:
    """A provider or a fallback chain, as a chain."""
    return (provider,) if isinstance(provider, str) else _tuple(provider)


def _tuple(items: list[str] | None) -> tuple[str, ...] | None:
    return tuple(items) if items else None  # an empty list sets nothing


class ClaudeRunBody(StartRunBody):
    """The body of `POST .../claude`: the provider is always `claude-code`."""

    provider: Literal["claude-code"] | None = None  # type: ignore[assignment]


class RunStarted(BaseModel):
    run_id: str
    stream_id: str
    stream_url: str
    cancel_url: str
    provider: str | None  # None while the run waits in the queue
    status: str

    @classmethod
    def from_domain(cls, run: Run, stream_url: str) -> RunStarted:
        return cls(
            run_id=run.run_id,
            stream_id=run.stream_id,
            stream_url=stream_url,
            cancel_url=f"/projects/{run.project_id}/runs/{run.run_id}/cancel",
            provider=run.provider,
            status=str(run.status),
        )


def input_request_data(event: InputRequestEvent) -> dict[str, Any]:
    """As the contract spells it, on the stream and in the run record's `pending_inputs`."""
    data: dict[str, Any] = {
        "request_id": event.request_id,
        "kind": event.kind,
        "tool": event.tool,
        "input": event.input,
        "description": event.description,
    }
    if event.questions is not None:
        data["questions"] = event.questions
    return data


class CallerInfo(BaseModel):
    """Who the caller's key is (the console shows only what it may do)."""

    name: str | None = Field(description="the key's name; null when auth is off")
    role: str
    projects: list[str] = Field(description="the projects it may read; ['*'] for all")


class RunRecord(BaseModel):
    run_id: str
    project_id: str
    stream_id: str
    provider: str | None
    providers_skipped: list[str]
    status: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    exit_code: int | None
    session_id: str | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    error: str | None
    metadata: dict[str, str]
    pending_inputs: list[dict[str, Any]]
    turns: int
    credentials: list[str]
    template: str | None
    settings: dict[str, Any] = Field(description="what the run was started with, as set")
    pipeline: dict[str, Any] | None = Field(
        description="the Woodpecker pipeline its success started: number, link, status, or error"
    )
    stream_url: str | None = Field(
        None, description="its event stream, signed for the caller (GET of one run only)"
    )

    @classmethod
    def from_domain(cls, run: Run) -> RunRecord:
        outcome = run.outcome
        return cls(
            run_id=run.run_id,
            project_id=run.project_id,
            stream_id=run.stream_id,
            provider=run.provider,
            providers_skipped=list(run.providers_skipped),
            status=run.status,
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            exit_code=outcome.exit_code,
            session_id=outcome.session_id,
            input_tokens=outcome.input_tokens,
            output_tokens=outcome.output_tokens,
            cost_usd=outcome.cost_usd,
            error=run.error,
            metadata=dict(run.metadata),
            pending_inputs=[input_request_data(event) for event in run.pending_inputs],
            turns=run.turns,
            credentials=list(run.credentials),
            template=run.template,
            settings=dict(run.settings),
            pipeline=dict(run.pipeline) if run.pipeline is not None else None,
        )


class AnswerBody(BaseModel):
    """An answer to the pending request `request_id`."""

    model_config = ConfigDict(extra="forbid")

    request_id: Name
    decision: Literal["allow", "deny"]
    message: str | None = Field(None, max_length=64 * 1024, description="why, for a deny")
    updated_input: dict[str, Any] | None = None
    answers: dict[str, str] | None = None


class MessageBody(BaseModel):
    """The user's next message: after the current turn (`queue`) or at once (`now`)."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, max_length=1024 * 1024)
    when: Literal["queue", "now"] = "queue"


InputBody = AnswerBody | MessageBody


class CredentialBody(BaseModel):
    """A credential's value (never returned) and the variable the agent gets it in."""

    model_config = ConfigDict(extra="forbid")

    value: str = Field(min_length=8, max_length=16 * 1024)
    env: CredentialName | None = Field(None, description="default: the credential's name")


class CredentialInfo(BaseModel):
    name: str
    env: str
    created_at: datetime
    updated_at: datetime
    fingerprint: str

    @classmethod
    def from_domain(cls, credential: SealedCredential) -> CredentialInfo:
        return cls(
            name=credential.name,
            env=credential.env,
            created_at=credential.created_at,
            updated_at=credential.updated_at,
            fingerprint=credential.fingerprint,
        )


class QueueEntry(BaseModel):
    run_id: str
    project_id: str
    priority: int
    position: int
    queued_at: datetime

    @classmethod
    def from_domain(cls, waiting: WaitingRun, position: int) -> QueueEntry:
        return cls(
            run_id=waiting.run_id,
            project_id=waiting.project_id,
            priority=waiting.priority,
            position=position,
            queued_at=waiting.queued_at,
        )


class ProviderCapabilities(BaseModel):
    streaming: bool
    resume: bool
    cancel: bool
    token_usage: bool
    models: list[str]


class ProviderInfo(BaseModel):
    name: str
    default: bool
    available: bool
    detail: str
    capabilities: ProviderCapabilities

    @classmethod
    def from_domain(cls, name: str, default: bool, caps: Capabilities) -> ProviderInfo:
        return cls(
            name=name,
            default=default,
            available=caps.available,
            detail=caps.detail,
            capabilities=ProviderCapabilities(
                streaming=caps.streaming,
                resume=caps.resume,
                cancel=caps.cancel,
                token_usage=caps.token_usage,
                models=list(caps.models),
            ),
        )


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


ToolName = Annotated[
    str, Field(min_length=1, max_length=MAX_NAME_CHARS, pattern=r"^[^,\x00-\x1f]+$")
]
Tools = Annotated[list[ToolName], Field(max_length=256)]


class KubeBody(BaseModel):
    """Which pod runs the project's agent (the deployment's settings where unset)."""

    model_config = ConfigDict(extra="forbid")

    namespace: Name | None = None
    pod: Name | None = Field(None, description="`{project}` is the project id")
    selector: Name | None = Field(None, description="a label selector; `{project}` as above")
    container: Name | None = None


class WebhookBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048)
    events: Annotated[
        list[Literal["run.started", "run.input_requested", "run.finished"]],
        Field(min_length=1, max_length=3),
    ]
    secret: CredentialName = Field(description="the credential that signs the deliveries")


class WoodpeckerBody(BaseModel):
    """A manual pipeline of this Woodpecker repository after each succeeded run."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048, pattern=r"^https?://")
    repo: str = Field(pattern=r"^[^/\s]+/[^/\s]+$", max_length=256, description="owner/name")
    branch: Name = "main"
    token: CredentialName = Field(description="the credential holding a personal access token")
    variables: dict[Annotated[str, Field(max_length=MAX_NAME_CHARS)], str] = Field(
        default_factory=dict, max_length=MAX_METADATA_ENTRIES
    )


class TemplateBody(BaseModel):
    """A template, or a project's overrides: every field optional; unknown fields are 422."""

    model_config = ConfigDict(extra="forbid")

    provider: Name | Annotated[list[Name], Field(min_length=1, max_length=MAX_CHAIN)] | None = None
    model: Name | None = None
    append_system_prompt: str | None = Field(None, max_length=MAX_SYSTEM_PROMPT_BYTES)
    allowed_tools: Tools | None = None
    disallowed_tools: Tools | None = None
    permission_mode: Literal["default", "acceptEdits", "plan", "bypassPermissions"] | None = None
    interactive: StrictBool | None = None
    max_turns: Annotated[int, Field(ge=1, le=MAX_TURNS), BeforeValidator(_not_bool)] | None = None
    timeout_s: Seconds | None = None
    max_budget_usd: Annotated[float, Field(gt=0, le=MAX_BUDGET_USD)] | None = None
    mcp_servers: dict[str, Any] | None = Field(
        None, description='Claude Code\'s --mcp-config object: {"mcpServers": {...}}'
    )
    priority: Priority | None = None
    metadata: Metadata | None = None
    credentials: Annotated[list[CredentialName], Field(max_length=MAX_METADATA_ENTRIES)] | None = (
        None
    )
    kube: KubeBody | None = None
    webhooks: Annotated[list[WebhookBody], Field(max_length=20)] | None = None
    woodpecker: WoodpeckerBody | None = None

    def run_settings(self) -> RunSettings:
        kube = self.kube
        webhooks = None
        if self.webhooks:
            webhooks = tuple(WebhookTarget(w.url, tuple(w.events), w.secret) for w in self.webhooks)
        return RunSettings(
            provider=_chain(self.provider),
            model=self.model,
            append_system_prompt=self.append_system_prompt,
            allowed_tools=_tuple(self.allowed_tools),
            disallowed_tools=_tuple(self.disallowed_tools),
            permission_mode=self.permission_mode,
            interactive=self.interactive,
            max_turns=self.max_turns,
            timeout_s=self.timeout_s,
            max_budget_usd=self.max_budget_usd,
            mcp_servers=self.mcp_servers,
            priority=self.priority,
            metadata=self.metadata,
            credentials=_tuple(self.credentials),
            kube=KubePlacement(**kube.model_dump()) if kube else None,
            webhooks=webhooks,
            woodpecker=WoodpeckerTarget(**self.woodpecker.model_dump())
            if self.woodpecker
            else None,
        )


class ProjectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    template: Name | None = None
    overrides: TemplateBody = Field(default_factory=TemplateBody)


class TemplateInfo(BaseModel):
    name: str
    source: str = Field(description='"api", or the file it was read from (read-only)')
    updated_at: datetime
    settings: dict[str, Any]

    @classmethod
    def from_domain(cls, template: Template) -> TemplateInfo:
        return cls(
            name=template.name,
            source=template.source,
            updated_at=template.updated_at,
            settings=template.settings.as_record(),
        )


class ProjectInfo(BaseModel):
    project_id: str
    template: str | None
    overrides: dict[str, Any]
    updated_at: datetime

    @classmethod
    def from_domain(cls, project: Project) -> ProjectInfo:
        return cls(
            project_id=project.project_id,
            template=project.template,
            overrides=project.overrides.as_record(),
            updated_at=project.updated_at,
        )


class DeliveryInfo(BaseModel):
    delivery_id: str = Field(description="the webhook-id of every attempt")
    run_id: str
    type: str
    url: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime | None = Field(description="of a pending one")

    @classmethod
    def from_domain(cls, delivery: Delivery) -> DeliveryInfo:
        return cls(
            delivery_id=delivery.delivery_id,
            run_id=delivery.run_id,
            type=delivery.event_type,
            url=delivery.url,
            status=delivery.status,  # type: ignore[arg-type]
            attempts=delivery.attempts,
            last_status_code=delivery.last_status_code,
            last_error=delivery.last_error,
            created_at=delivery.created_at,
            next_attempt_at=delivery.next_attempt_at if delivery.status == "pending" else None,
        )


def webhook_body(event_type: str, run: Run) -> bytes:
    """A delivery's body: its type and the run record as the API shows it."""
    record = RunRecord.from_domain(run).model_dump(mode="json")
    return json.dumps({"type": event_type, "run": record}, ensure_ascii=False).encode()

"""Request and response bodies of the HTTP API (pydantic lives here, not in the domain)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

from domain.credentials import SealedCredential
from domain.model import (
    CREDENTIAL_NAME,
    MAX_CHAIN,
    MAX_METADATA_ENTRIES,
    MAX_METADATA_VALUE_CHARS,
    MAX_NAME_CHARS,
    MAX_PRIORITY,
    MAX_TIMEOUT_S,
    Capabilities,
    Run,
    WaitingRun,
)
from handlers.sse import input_request_data

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
    priority: Priority = Field(0, description="in the queue: higher first")
    queue_timeout_s: Seconds | None = Field(None, description="how long it may wait queued")
    interactive: StrictBool = Field(
        False, description="keep the session open; permission requests come to the API"
    )
    permission_mode: Literal["default", "acceptEdits", "plan", "bypassPermissions"] | None = None
    credentials: Annotated[list[CredentialName], Field(max_length=MAX_METADATA_ENTRIES)] | None = (
        Field(
            None, description="names of the project's credentials the run requires (422 if missing)"
        )
    )
    metadata: (
        Annotated[
            dict[
                Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)],
                Annotated[str, Field(max_length=MAX_METADATA_VALUE_CHARS)],
            ],
            Field(max_length=MAX_METADATA_ENTRIES),
        ]
        | None
    ) = None


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

    value: str = Field(min_length=8, max_length=64 * 1024)
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

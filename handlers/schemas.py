"""Request and response bodies of the HTTP API (pydantic lives here, not in the domain)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from domain.model import Capabilities, Run


class StartRunBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, description="what the agent should do; at most 1 MiB")
    provider: str | list[str] | None = Field(
        None, description="provider name, or a fallback chain; default: the registry's default"
    )
    session_id: str | None = None
    model: str | None = None
    timeout_s: int | None = Field(None, ge=1, le=86_400)
    metadata: dict[str, str] | None = None


class RunStarted(BaseModel):
    run_id: str
    stream_id: str
    stream_url: str
    cancel_url: str
    provider: str
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
    provider: str
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

    @classmethod
    def from_domain(cls, run: Run) -> RunRecord:
        return cls.model_validate(run, from_attributes=True)


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

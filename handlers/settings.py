"""Gateway settings: AGENT_GATEWAY_* environment variables, each also a `serve` flag."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "AGENT_GATEWAY_"


def default_workspace_root() -> Path:
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "agent-gateway" / "workspaces"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    runner: Literal["local", "kubernetes"] = "local"
    claude_command: str = "claude"
    claude_permission_mode: str = "bypassPermissions"
    workspace_root: Path = Field(default_factory=default_workspace_root)
    event_backend: Literal["memory", "redis", "postgres"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_max_connections: int = Field(512, ge=8)
    database_url: str | None = None  # postgresql://...: durable runs, queue and events
    database_max_connections: int = Field(20, ge=2)
    history_days: int = Field(30, ge=1)  # runs and events kept in PostgreSQL
    api_keys_file: Path | None = None
    stream_token_secret: str | None = None  # default: random per process
    stream_token_ttl_s: float = Field(86_400.0, gt=0)
    # id:base64(32 bytes),...: the first seals credentials, all open them. Default: a key of
    # this process with the memory backend; none (credentials refused) with the others.
    credential_keys: str | None = Field(None, repr=False)
    templates_dir: Path | None = None  # *.yaml: read-only templates (GitOps), name = file stem
    webhook_allow_private: bool = False  # webhooks to loopback, link-local, private addresses
    webhook_first_backoff_s: float = Field(5.0, gt=0)  # doubled per attempt, up to an hour
    webhook_give_up_after_s: float = Field(86_400.0, gt=0)
    kube_context: str | None = None
    kube_namespace: str = "default"
    kube_pod: str = "{project}-agent-0"
    kube_selector: str | None = None
    kube_container: str | None = None
    kube_max_execs: int = Field(1000, ge=1)
    kube_ping_interval_s: float = Field(20.0, gt=0)
    # A session transcript larger than this is not kept (a resume in a recycled pod fails).
    session_transcript_max_bytes: int = Field(4 * 1024 * 1024, ge=0)
    opencode_url: str = "http://127.0.0.1:4096"
    opencode_username: str = "opencode"
    opencode_password: str | None = None
    opencode_model: str | None = None  # providerID/modelID; default: the server's
    opencode_connect_timeout_s: float = Field(5.0, gt=0)
    opencode_read_timeout_s: float = Field(60.0, gt=0)  # silence on the event stream
    opencode_abort_wait_s: float = Field(10.0, gt=0)
    anthropic_model: str = "claude-sonnet-4-5"
    anthropic_max_tokens: int = Field(4096, ge=1)
    anthropic_system: str | None = None
    anthropic_max_retries: int = Field(2, ge=0)
    # JSON {"model": [USD per million input tokens, per million output tokens]}
    anthropic_prices: dict[str, tuple[float, float]] = Field(default_factory=dict)
    providers: str = "claude-code,opencode,anthropic"
    # streams and runs
    retain_events: int = Field(100_000, ge=1)
    retain_bytes: int = Field(64 * 1024 * 1024, ge=1024)  # per stream, memory backend
    subscriber_max_pending: int = Field(10_000, ge=1)
    stream_retention_s: float = Field(3600.0, ge=0)
    ping_interval_s: float = Field(15.0, gt=0)
    send_timeout_s: float = Field(30.0, gt=0)
    interrupt_grace_s: float = Field(5.0, ge=0)
    terminate_grace_s: float = Field(5.0, ge=0)
    shutdown_grace_s: float = Field(20.0, ge=0)
    lease_ttl_s: float = Field(15.0, gt=0)  # a dead replica's runs fail after this
    idle_timeout_s: float = Field(600.0, gt=0)  # an interactive run with no turn: closed
    input_timeout_s: float = Field(3600.0, gt=0)  # a request nobody answers: denied
    max_runs: int = Field(200, ge=1)  # concurrent runs on one replica
    max_runs_per_project: int = Field(20, ge=1)
    max_queued: int = Field(10_000, ge=0)  # runs waiting, per deployment; 0 = no queue
    max_subscribers: int = Field(10_000, ge=1)  # open event streams on one replica
    max_subscribers_per_stream: int = Field(1_000, ge=1)
    rate_limit_per_s: float = Field(20.0, ge=0)  # requests per key; 0 = no limit
    rate_limit_burst: int = Field(100, ge=1)
    max_body_bytes: int = Field(2 * 1024 * 1024, ge=1024)
    body_timeout_s: float = Field(30.0, gt=0)  # to receive a whole request body
    head_timeout_s: float = Field(15.0, gt=0)  # to receive a request line and headers
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"

    @model_validator(mode="after")
    def _postgres_backend_has_a_database(self) -> Settings:
        if self.event_backend == "postgres" and self.database_url is None:
            raise ValueError(f"{ENV_PREFIX}EVENT_BACKEND=postgres needs {ENV_PREFIX}DATABASE_URL")
        return self

    @model_validator(mode="after")
    def _cut_subscribers_can_resume(self) -> Settings:
        # A subscriber cut for falling behind resumes from where it was: that point must
        # still be retained, with room to spare for the time it takes to reconnect.
        if self.retain_events < 2 * self.subscriber_max_pending:
            raise ValueError(
                f"{ENV_PREFIX}RETAIN_EVENTS ({self.retain_events}) must be at least twice "
                f"{ENV_PREFIX}SUBSCRIBER_MAX_PENDING ({self.subscriber_max_pending}), so "
                "that a subscriber cut for falling behind can resume without a gap"
            )
        return self

    def provider_names(self) -> list[str]:
        return [name.strip() for name in self.providers.split(",") if name.strip()]


class SettingsError(Exception):
    """Invalid settings, with a message naming each variable at fault."""


def load_settings(**overrides: object) -> Settings:
    """Reads the environment (plus `serve` flags as overrides); unknown AGENT_GATEWAY_*
    variables and invalid values fail with the variable's name."""
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    unknown = sorted(
        name for name in os.environ if name.startswith(ENV_PREFIX) and name not in known
    )
    if unknown:
        raise SettingsError(f"unknown setting(s): {', '.join(unknown)}")
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = [
            f"{ENV_PREFIX}{'_'.join(str(p) for p in error['loc']).upper()}: {error['msg']}"
            if error["loc"]
            else str(error["ctx"]["error"])  # a rule across settings names them itself
            for error in exc.errors()
        ]
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None

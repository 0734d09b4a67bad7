"""Values of the domain: requests, events, run records, capabilities."""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain.errors import InvalidRequest
from domain.templates import KubePlacement
from domain.webhooks import WebhookTarget
from domain.woodpecker import WoodpeckerTarget

MAX_PROMPT_BYTES = 1024 * 1024
MAX_TIMEOUT_S = 86_400
MAX_CHAIN = 8  # providers in one fallback chain
MAX_NAME_CHARS = 256  # a provider, model or session id
MAX_METADATA_ENTRIES = 64
MAX_SYSTEM_PROMPT_BYTES = 64 * 1024  # an argv entry may hold 128 KiB on Linux
MAX_TURNS = 10_000
MAX_BUDGET_USD = 100_000.0
CREDENTIAL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")  # also an environment variable
MAX_METADATA_VALUE_CHARS = 4096
MAX_PRIORITY = 100  # a run's priority in the queue is -MAX_PRIORITY..MAX_PRIORITY
PERMISSION_MODES = ("default", "acceptEdits", "plan", "bypassPermissions")  # claude-code's
PROJECT_ID_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING_INPUT = "waiting_input"  # an interactive run's agent waits for an answer
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def finished(self) -> bool:
        return self not in (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING_INPUT)


class OutputType(enum.StrEnum):
    TEXT = "text"
    THINKING = "thinking"
    TOOL_USE = "tool_use"
    TOOL_RESULT = "tool_result"
    SYSTEM = "system"
    STDOUT = "stdout"
    STDERR = "stderr"
    UNPARSED = "unparsed"
    TURN_END = "turn_end"  # an interactive run's turn ended; the run goes on


def validate_project_id(project_id: str) -> str:
    if not PROJECT_ID_PATTERN.fullmatch(project_id):
        raise InvalidRequest(
            "project_id",
            "must be 1-63 characters of [a-z0-9-], starting and ending with a letter or digit",
        )
    return project_id


@dataclass(frozen=True, slots=True)
class AgentRequest:
    """What a caller asks an agent to do. Construct it with `AgentRequest.create` to validate."""

    project_id: str
    prompt: str
    providers: tuple[str, ...] = ()  # empty: the registry's default
    session_id: str | None = None
    model: str | None = None
    timeout_s: int | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    priority: int = 0  # in the queue: higher first
    queue_timeout_s: int | None = None  # how long it may wait in the queue
    interactive: bool = False  # the session stays open; the agent's requests come to the API
    permission_mode: str | None = None  # None: the deployment's
    credentials: tuple[str, ...] = ()  # names of the project's credentials it requires
    # From templates and projects (domain/templates.py); each provider takes those it can.
    append_system_prompt: str | None = None
    allowed_tools: tuple[str, ...] = ()
    disallowed_tools: tuple[str, ...] = ()
    max_turns: int | None = None
    max_budget_usd: float | None = None
    mcp_servers: Mapping[str, Any] | None = None
    kube: KubePlacement | None = None
    webhooks: tuple[WebhookTarget, ...] = ()
    woodpecker: WoodpeckerTarget | None = None
    template: str | None = None  # the template it was resolved with
    settings: Mapping[str, Any] = field(default_factory=dict)  # what it runs with, as set

    def options_besides(self, taken: set[str]) -> list[str]:
        """The template options this request sets that are not in `taken`: what a
        provider that takes only those must refuse."""
        options = {
            "append_system_prompt": self.append_system_prompt is not None,
            "allowed_tools": bool(self.allowed_tools),
            "disallowed_tools": bool(self.disallowed_tools),
            "max_turns": self.max_turns is not None,
            "max_budget_usd": self.max_budget_usd is not None,
            "mcp_servers": self.mcp_servers is not None,
            "kube": self.kube is not None,
        }
        return [name for name, is_set in options.items() if is_set and name not in taken]

    @classmethod
    def create(
        cls,
        project_id: str,
        prompt: str,
        providers: str | list[str] | tuple[str, ...] | None = None,
        session_id: str | None = None,
        model: str | None = None,
        timeout_s: int | None = None,
        metadata: Mapping[str, str] | None = None,
        priority: int = 0,
        queue_timeout_s: int | None = None,
        interactive: bool = False,
        permission_mode: str | None = None,
        credentials: list[str] | tuple[str, ...] | None = None,
        append_system_prompt: str | None = None,
        allowed_tools: tuple[str, ...] = (),
        disallowed_tools: tuple[str, ...] = (),
        max_turns: int | None = None,
        max_budget_usd: float | None = None,
        mcp_servers: Mapping[str, Any] | None = None,
        kube: KubePlacement | None = None,
        webhooks: tuple[WebhookTarget, ...] = (),
        woodpecker: WoodpeckerTarget | None = None,
        template: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> AgentRequest:
        validate_project_id(project_id)
        if not isinstance(prompt, str) or not prompt:
            raise InvalidRequest("prompt", "is required and must not be empty")
        _check_encodable("prompt", prompt)
        if len(prompt.encode("utf-8")) > MAX_PROMPT_BYTES:
            raise InvalidRequest("prompt", f"must be at most {MAX_PROMPT_BYTES} bytes")
        if timeout_s is not None and not (1 <= timeout_s <= MAX_TIMEOUT_S):
            raise InvalidRequest("timeout_s", f"must be between 1 and {MAX_TIMEOUT_S}")
        if queue_timeout_s is not None and not (1 <= queue_timeout_s <= MAX_TIMEOUT_S):
            raise InvalidRequest("queue_timeout_s", f"must be between 1 and {MAX_TIMEOUT_S}")
        if permission_mode is not None and permission_mode not in PERMISSION_MODES:
            raise InvalidRequest("permission_mode", f"must be one of {', '.join(PERMISSION_MODES)}")
        if not -MAX_PRIORITY <= priority <= MAX_PRIORITY:
            raise InvalidRequest("priority", f"must be between {-MAX_PRIORITY} and {MAX_PRIORITY}")
        if isinstance(providers, str):
            providers = (providers,)
        chain = tuple(providers or ())
        if len(chain) > MAX_CHAIN:
            raise InvalidRequest("provider", f"at most {MAX_CHAIN} providers in a chain")
        names = [("session_id", session_id), ("model", model)]
        names += [("provider", name) for name in chain]
        for field_name, value in names:
            if value is None:
                continue
            if not 1 <= len(value) <= MAX_NAME_CHARS:
                raise InvalidRequest(field_name, f"must be 1 to {MAX_NAME_CHARS} characters")
            _check_encodable(field_name, value)
            if any(ord(c) < 32 or ord(c) == 127 for c in value):  # it may become an argument
                raise InvalidRequest(field_name, "must not contain control characters")
        _validate_metadata(metadata or {})
        required = tuple(dict.fromkeys(credentials or ()))
        if len(required) > MAX_METADATA_ENTRIES:
            raise InvalidRequest("credentials", f"at most {MAX_METADATA_ENTRIES} names")
        for name in required:
            if not CREDENTIAL_NAME.fullmatch(name):
                raise InvalidRequest("credentials", f"{name!r} is not a credential name")
        _validate_agent_options(append_system_prompt, allowed_tools + disallowed_tools, max_turns)
        for kube_field in ("namespace", "pod", "selector", "container"):
            value = getattr(kube, kube_field) if kube is not None else None
            if value is not None:
                _check_encodable(f"kube.{kube_field}", value)
        if max_budget_usd is not None and not 0 < max_budget_usd <= MAX_BUDGET_USD:
            raise InvalidRequest("max_budget_usd", f"must be above 0 and at most {MAX_BUDGET_USD}")
        return cls(
            project_id,
            prompt,
            chain,
            session_id,
            model,
            timeout_s,
            dict(metadata or {}),
            priority,
            queue_timeout_s,
            interactive,
            permission_mode,
            required,
            append_system_prompt,
            tuple(allowed_tools),
            tuple(disallowed_tools),
            max_turns,
            max_budget_usd,
            dict(mcp_servers) if mcp_servers is not None else None,
            kube,
            tuple(webhooks),
            woodpecker,
            template,
            dict(settings or {}),
        )


def _validate_agent_options(
    append_system_prompt: str | None, tools: tuple[str, ...], max_turns: int | None
) -> None:
    """These become command-line arguments: bounded; tool names without control characters
    or commas (the CLI takes them as one comma-separated argument)."""
    if append_system_prompt is not None:
        _check_encodable("append_system_prompt", append_system_prompt)
        if len(append_system_prompt.encode()) > MAX_SYSTEM_PROMPT_BYTES:
            raise InvalidRequest(
                "append_system_prompt", f"must be at most {MAX_SYSTEM_PROMPT_BYTES} bytes"
            )
    for tool in tools:
        if not 1 <= len(tool) <= MAX_NAME_CHARS or any(ord(c) < 32 or c == "," for c in tool):
            raise InvalidRequest("tools", f"{tool!r}: 1 to {MAX_NAME_CHARS} characters, no comma")
        _check_encodable("tools", tool)
    if max_turns is not None and not 1 <= max_turns <= MAX_TURNS:
        raise InvalidRequest("max_turns", f"must be between 1 and {MAX_TURNS}")


def _check_encodable(field_name: str, value: str) -> None:
    """JSON allows lone surrogates (\\ud800) that no UTF-8 byte string can carry."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(field_name, "must be valid Unicode (no lone surrogates)") from None


def _validate_metadata(metadata: Mapping[str, str]) -> None:
    if len(metadata) > MAX_METADATA_ENTRIES:
        raise InvalidRequest("metadata", f"at most {MAX_METADATA_ENTRIES} entries")
    for key, value in metadata.items():
        if not 1 <= len(key) <= MAX_NAME_CHARS:
            raise InvalidRequest("metadata", f"keys must be 1 to {MAX_NAME_CHARS} characters")
        if len(value) > MAX_METADATA_VALUE_CHARS:
            raise InvalidRequest(
                f"metadata.{key}", f"must be at most {MAX_METADATA_VALUE_CHARS} characters"
            )
        _check_encodable("metadata", key + value)


@dataclass(frozen=True, slots=True)
class Capabilities:
    available: bool
    detail: str = ""
    streaming: bool = False
    resume: bool = False
    cancel: bool = False
    token_usage: bool = False
    models: tuple[str, ...] = ()


# --- events an agent yields ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutputEvent:
    """One piece of agent output. `fields` holds the type's extra keys (tool, input, ...)."""

    type: OutputType
    content: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    raw: Any = None


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    message: str
    partial_content: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What is known of how a run ended: one value shared by the agent's AgentResult, the
    stream's DoneEvent and the run record. A field the provider did not report is None."""

    exit_code: int | None = None
    result: str | None = None
    session_id: str | None = None
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None


@dataclass(frozen=True, slots=True)
class AgentResult:
    """The last thing an agent yields: its outcome, and whether it says it failed (why in
    `error`). The run service decides the final status (a cancelled run is cancelled
    whatever the exit code)."""

    outcome: Outcome = Outcome()
    is_error: bool = False
    error: str | None = None


@dataclass(frozen=True, slots=True)
class InputRequestEvent:
    """The agent asks: may it use a tool (`permission`), or what is the answer (`question`,
    its `questions` as the agent put them). Keyed by `request_id`, unique within the run."""

    request_id: str
    kind: str  # "permission" | "question"
    tool: str
    input: Mapping[str, Any]
    description: str | None = None
    questions: Any = None


@dataclass(frozen=True, slots=True)
class InputResolvedEvent:
    """How a request ended: allow, deny, answered, withdrawn (by the agent), timed_out."""

    request_id: str
    decision: str
    by: str | None = None


AgentEvent = OutputEvent | ErrorEvent | InputRequestEvent | InputResolvedEvent | AgentResult


# --- input to a running agent ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserMessage:
    """The user's next message; `now` ends the current turn and runs it at once."""

    text: str
    now: bool = False


@dataclass(frozen=True, slots=True)
class InputAnswer:
    """An answer to the agent's permission request or question `request_id`."""

    request_id: str
    allow: bool
    message: str | None = None
    updated_input: Mapping[str, Any] | None = None
    answers: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Interrupt:
    """Stop the current turn; the run and its session stay open."""


@dataclass(frozen=True, slots=True)
class Close:
    """End the run once the current turn has ended."""


AgentInput = UserMessage | InputAnswer | Interrupt | Close


# --- events on a stream -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DoneEvent:
    """The last event of every stream, exactly once."""

    status: RunStatus
    outcome: Outcome
    duration_ms: int | None
    provider: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """The run's status changed; a queued run's `position` (1 = next) comes with it."""

    status: RunStatus
    position: int | None = None


@dataclass(frozen=True, slots=True)
class GapEvent:
    """Events before `first_available` are no longer retained."""

    first_available: int


@dataclass(frozen=True, slots=True)
class RunChangedEvent:
    """A run's record as it was just saved: the events of the runs feed (not of a run's
    own stream)."""

    run: Run


StreamEvent = (
    OutputEvent
    | ErrorEvent
    | StatusEvent
    | InputRequestEvent
    | InputResolvedEvent
    | DoneEvent
    | GapEvent
    | RunChangedEvent
)


def approximate_size(event: StreamEvent) -> int:
    """About how many bytes an event holds, for retention budgets: its text, plus the JSON of
    its extra fields (tool inputs, raw objects) when it has any. Text deltas, the bulk of a
    stream, cost nothing more than their length."""
    if isinstance(event, OutputEvent):
        size = 100 + len(event.content)
        if event.fields:
            size += len(json.dumps(event.fields, default=str))
        if event.raw is not None:
            size += len(json.dumps(event.raw, default=str))
        return size
    if isinstance(event, ErrorEvent):
        return 100 + len(event.message) + len(event.partial_content or "")
    if isinstance(event, DoneEvent):
        return 200 + len(event.outcome.result or "")
    if isinstance(event, InputRequestEvent):
        return 200 + len(json.dumps(event.input, default=str))
    if isinstance(event, RunChangedEvent):
        return 1000 + len(event.run.outcome.result or "") + len(event.run.error or "")
    return 100  # a status, a resolution or a gap


@dataclass(frozen=True, slots=True)
class SequencedEvent:
    """A stream event with its per-stream sequence number (the SSE id)."""

    seq: int
    event: StreamEvent


# --- the run record -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Run:
    """A run record. Until it ends, `outcome` holds only the session asked for; until it
    leaves the queue, `provider` is None."""

    run_id: str
    project_id: str
    stream_id: str
    provider: str | None
    status: RunStatus
    created_at: datetime
    providers_skipped: tuple[str, ...] = ()
    started_at: datetime | None = None
    finished_at: datetime | None = None
    outcome: Outcome = Outcome()
    error: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    pending_inputs: tuple[InputRequestEvent, ...] = ()  # what an interactive run waits for
    turns: int = 0  # turns ended, of an interactive run
    credentials: tuple[str, ...] = ()  # names of the credentials its agent was given
    template: str | None = None  # the template its settings came from
    settings: Mapping[str, Any] = field(default_factory=dict)  # what it ran with, as set
    pipeline: Mapping[str, Any] | None = None  # the CI pipeline its success started


@dataclass(frozen=True, slots=True)
class QueuedRun:
    """A run waiting for capacity: what it takes to start it on any replica. `deadline`
    is when it stops waiting (its queue_timeout_s), if it has one."""

    run_id: str
    stream_id: str
    request: AgentRequest
    queued_at: datetime
    deadline: datetime | None = None

    @property
    def project_id(self) -> str:
        return self.request.project_id

    @property
    def priority(self) -> int:
        return self.request.priority

    def waiting(self) -> WaitingRun:
        return WaitingRun(self.run_id, self.project_id, self.priority, self.queued_at)


@dataclass(frozen=True, slots=True)
class WaitingRun:
    """A queued run as the queue's listing shows it (without its request)."""

    run_id: str
    project_id: str
    priority: int
    queued_at: datetime


# --- conversations kept by the gateway ------------------------------------------------------


class TurnRole(enum.StrEnum):
    USER = "user"
    ASSISTANT = "assistant"


@dataclass(frozen=True, slots=True)
class Turn:
    role: TurnRole
    content: str


@dataclass(frozen=True, slots=True)
class Completed:
    """A short helper command (not an agent) that a process runner ran to its end."""

    exit_code: int
    stdout: bytes


@dataclass(frozen=True, slots=True)
class Transcript:
    """An agent CLI's own record of a session, kept so that the session can go on where
    that CLI's disk is gone (a recycled pod). `path` is where the CLI keeps it, relative to
    its state folder; `content` is sealed when `key_id` names the key (it holds what the
    agent's tools printed, credentials included)."""

    path: str
    content: bytes
    key_id: str | None = None


@dataclass(frozen=True, slots=True)
class Session:
    """A multi-turn conversation: the turns of providers without their own memory (the
    Messages API), or the transcript of a CLI that keeps its own. It belongs to one
    project."""

    session_id: str
    project_id: str
    turns: tuple[Turn, ...] = ()
    transcript: Transcript | None = None

    @property
    def size(self) -> int:
        """Bytes it holds, roughly: what a store bounded by memory counts."""
        transcript = len(self.transcript.content) if self.transcript else 0
        return transcript + sum(len(turn.content) for turn in self.turns)

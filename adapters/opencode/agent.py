"""OpenCode: an HTTP/SSE client of `opencode serve` (checked against opencode-ai 1.18.33).

One run = one prompt in an OpenCode session. The server's `/event` stream carries the
events of every session of its directory; the run subscribes to it before sending the prompt
(so nothing is missed), keeps its own session's events, and ends when the session goes
idle. Every upstream stream and client is closed when the run ends, however it ends:
OpenCode's server leaks listeners of clients that vanish (anomalyco/opencode #15645,
#22198)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import httpx
from httpx_sse import EventSource, aconnect_sse

from domain.errors import AgentStartFailed, InputNotAccepted
from domain.model import (
    AgentEvent,
    AgentInput,
    AgentRequest,
    AgentResult,
    Capabilities,
    ErrorEvent,
    Outcome,
    OutputEvent,
    OutputType,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OpenCodeSettings:
    url_template: str  # `{project}` replaced
    username: str = "opencode"
    password: str | None = None
    model: str | None = None  # "providerID/modelID"; default: the server's
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0  # the server sends a heartbeat about every 10 s
    abort_wait_s: float = 10.0


@dataclass(slots=True)
class _Translation:
    """What one run has seen of its session, to turn OpenCode events into ours."""

    session_id: str
    roles: dict[str, str] = field(default_factory=dict)  # message id -> role
    part_types: dict[str, str] = field(default_factory=dict)  # part id -> type
    streamed: set[str] = field(default_factory=set)  # part ids whose deltas we emitted
    tool_states: dict[str, str] = field(default_factory=dict)  # part id -> status emitted
    last_text: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    error: str | None = None
    idle: bool = False


class OpenCodeAgent:
    """CodeAgent for OpenCode servers, one base URL per project."""

    def __init__(self, settings: OpenCodeSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._state = self._caps(False, "not probed yet", ())
        self._probed_at = -1e9
        self._probing = False
        if "{project}" not in settings.url_template:
            # Available only once a probe says so: the first one now (at build time, before
            # the server takes requests; refused at once when nothing listens).
            self._probe(settings.url_template)

    # --- capabilities ------------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        """The last known state: never blocks. A stale state (over 10 s, or 2 s while the
        server is unavailable) is refreshed by a probe in a background thread; runs update
        it too. A per-project URL template cannot be probed without a project and is
        reported available."""
        template = self._settings.url_template
        if "{project}" in template:
            return self._caps(True, f"servers at {template}", ())
        with self._lock:
            max_age = 10 if self._state.available else 2
            stale = time.monotonic() - self._probed_at > max_age
            if stale and not self._probing:
                self._probing = True
                threading.Thread(target=self._probe, args=(template,), daemon=True).start()
            return self._state

    def _probe(self, url: str) -> None:
        try:
            timeout = self._settings.connect_timeout_s
            with httpx.Client(base_url=url, auth=self._auth(), timeout=timeout) as client:
                health = client.get("/global/health").raise_for_status().json()
                providers = client.get("/config/providers").raise_for_status().json()
            models = tuple(
                f"{provider['id']}/{model}"
                for provider in providers.get("providers", [])
                for model in provider.get("models", {})
            )
            state = self._caps(True, f"OpenCode {health.get('version')} at {url}", models)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            state = self._caps(False, f"OpenCode server at {url} unreachable: {exc}", ())
        with self._lock:
            self._state, self._probed_at, self._probing = state, time.monotonic(), False

    def _note(self, available: bool, detail: str) -> None:
        """What a run learned about the server (keeps the models a probe found)."""
        with self._lock:
            self._state = self._caps(available, detail, self._state.models)

    @staticmethod
    def _caps(available: bool, detail: str, models: tuple[str, ...]) -> Capabilities:
        return Capabilities(
            available=available,
            detail=detail,
            streaming=True,
            resume=True,
            cancel=True,
            token_usage=True,
            models=models,
        )

    def _auth(self) -> httpx.BasicAuth | None:
        if self._settings.password is None:
            return None
        return httpx.BasicAuth(self._settings.username, self._settings.password)

    # --- start --------------------------------------------------------------------------------

    async def start(self, run_id: str, request: AgentRequest) -> OpenCodeRun:
        if request.interactive:
            raise AgentStartFailed("interactive runs are not supported by opencode yet")
        settings = self._settings
        base_url = settings.url_template.format(project=request.project_id)
        timeout = httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s)
        client = httpx.AsyncClient(base_url=base_url, auth=self._auth(), timeout=timeout)
        stream = contextlib.AsyncExitStack()
        try:
            session_id = await self._session(client, run_id, request)
            # Subscribe before prompting, so that no event of this prompt is missed.
            source = await stream.enter_async_context(aconnect_sse(client, "GET", "/event"))
            source.response.raise_for_status()
            body: dict[str, Any] = {"parts": [{"type": "text", "text": request.prompt}]}
            model = request.model or settings.model
            if model:
                provider_id, _, model_id = model.partition("/")
                body["model"] = {"providerID": provider_id, "modelID": model_id}
            response = await client.post(f"/session/{session_id}/prompt_async", json=body)
            response.raise_for_status()
        except (httpx.HTTPError, KeyError, ValueError, AgentStartFailed) as exc:
            await stream.aclose()
            await client.aclose()
            detail = exc.detail if isinstance(exc, AgentStartFailed) else f"{exc}"
            if "{project}" not in settings.url_template:
                self._note(False, f"OpenCode at {base_url}: {detail}")
            raise AgentStartFailed(f"OpenCode at {base_url}: {detail}") from exc
        return OpenCodeRun(client, stream, source, session_id, settings.abort_wait_s)

    async def _session(self, client: httpx.AsyncClient, run_id: str, request: AgentRequest) -> str:
        if request.session_id:
            response = await client.get(f"/session/{request.session_id}")
            if response.status_code == 404:
                raise AgentStartFailed(f"no session {request.session_id!r}")
            response.raise_for_status()
            return request.session_id
        # A title of our own: without one OpenCode asks the model for a title first.
        response = await client.post("/session", json={"title": f"agent-gateway run {run_id}"})
        response.raise_for_status()
        return str(response.json()["id"])


class OpenCodeRun:
    """AgentRun of one prompt in an OpenCode session. httpx and JSON errors are translated
    here: a lost event stream is reconnected once, then an ErrorEvent; an event that is not
    JSON is `unparsed` output."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        stream: contextlib.AsyncExitStack,
        source: EventSource,
        session_id: str,
        abort_wait_s: float,
    ) -> None:
        self._client = client
        self._stream = stream
        self._source = source
        self._seen = _Translation(session_id)
        self._abort_wait_s = abort_wait_s
        self._ended = asyncio.Event()

    async def events(self) -> AsyncGenerator[AgentEvent, None]:
        client, stream, source, seen = self._client, self._stream, self._source, self._seen
        reconnected = False
        try:
            while not seen.idle:
                try:
                    async for sse in source.aiter_sse():
                        for event in self._translate_sse(sse.data, seen):
                            yield event
                        if seen.idle:
                            break
                    else:
                        raise httpx.RemoteProtocolError("the server ended the event stream")
                except httpx.HTTPError as exc:
                    if reconnected:
                        yield ErrorEvent(f"OpenCode event stream lost twice: {exc}")
                        seen.error = seen.error or "OpenCode event stream lost"
                        break
                    reconnected = True
                    log.warning("OpenCode event stream dropped (%s); reconnecting", exc)
                    try:
                        await stream.aclose()
                        source = await stream.enter_async_context(
                            aconnect_sse(client, "GET", "/event")
                        )
                        if await self._session_idle(seen.session_id):
                            break  # it finished while we were away
                    except (httpx.HTTPError, ValueError) as again:
                        yield ErrorEvent(f"OpenCode event stream lost: {again}")
                        seen.error = seen.error or "OpenCode event stream lost"
                        break
            outcome = Outcome(
                result=seen.last_text,
                session_id=seen.session_id,
                input_tokens=seen.input_tokens,
                output_tokens=seen.output_tokens,
                cost_usd=seen.cost_usd,
            )
            yield AgentResult(outcome, is_error=seen.error is not None, error=seen.error)
        finally:
            self._ended.set()
            await stream.aclose()
            await client.aclose()

    async def _session_idle(self, session_id: str) -> bool:
        statuses = (await self._client.get("/session/status")).json()
        status = statuses.get(session_id) if isinstance(statuses, dict) else None
        return status is None or status.get("type") == "idle"

    def _translate_sse(self, data: str, seen: _Translation) -> list[AgentEvent]:
        try:
            event = json.loads(data)
        except ValueError:
            return [OutputEvent(OutputType.UNPARSED, data)]
        if not isinstance(event, dict):
            return [OutputEvent(OutputType.UNPARSED, data)]
        try:
            return self._translate(event, seen)
        except (TypeError, AttributeError, KeyError, ValueError):  # of an unexpected shape
            return [OutputEvent(OutputType.UNPARSED, data)]

    def _translate(self, event: dict[str, Any], seen: _Translation) -> list[AgentEvent]:
        kind = event.get("type")
        props = event.get("properties") or {}
        if props.get("sessionID") != seen.session_id:
            return []  # another session of the same server
        if kind == "message.updated":
            info = props.get("info") or {}
            seen.roles[info.get("id", "")] = info.get("role", "")
        elif kind == "message.part.delta":
            part_id = props.get("partID", "")
            if seen.roles.get(props.get("messageID", "")) != "assistant":
                return []
            if props.get("field") == "text" and props.get("delta"):
                seen.streamed.add(part_id)
                kind_of_part = seen.part_types.get(part_id)
                output = OutputType.THINKING if kind_of_part == "reasoning" else OutputType.TEXT
                return [OutputEvent(output, props["delta"])]
        elif kind == "message.part.updated":
            return self._part(props.get("part") or {}, seen)
        elif kind == "session.status":
            status = props.get("status") or {}
            if status.get("type") == "retry":  # OpenCode retries forever: say so
                fields = {"subtype": "retry", "attempt": status.get("attempt")}
                return [OutputEvent(OutputType.SYSTEM, str(status.get("message", "")), fields)]
        elif kind == "session.error":
            error = props.get("error") or {}
            name = error.get("name", "error")
            message = (error.get("data") or {}).get("message") or name
            if name != "MessageAbortedError":  # the answer to our own abort
                seen.error = f"{name}: {message}"
                return [ErrorEvent(seen.error, partial_content=seen.last_text)]
        elif kind == "session.idle":
            seen.idle = True
        elif kind in ("permission.updated", "permission.asked"):
            return [
                OutputEvent(
                    OutputType.SYSTEM, "permission requested", {"subtype": "permission"}, raw=props
                )
            ]
        return []

    def _part(self, part: dict[str, Any], seen: _Translation) -> list[AgentEvent]:
        part_id = part.get("id", "")
        part_type = part.get("type", "")
        seen.part_types[part_id] = part_type
        if seen.roles.get(part.get("messageID", "")) != "assistant":
            return []
        if part_type in ("text", "reasoning"):
            finished = (part.get("time") or {}).get("end") is not None
            if finished and part_type == "text":
                seen.last_text = part.get("text", "")
            if finished and part_id not in seen.streamed and part.get("text"):
                output = OutputType.TEXT if part_type == "text" else OutputType.THINKING
                return [OutputEvent(output, part["text"])]
        elif part_type == "tool":
            return self._tool(part, seen)
        elif part_type == "step-finish":
            tokens = part.get("tokens") or {}
            seen.input_tokens = (seen.input_tokens or 0) + int(tokens.get("input", 0))
            seen.output_tokens = (seen.output_tokens or 0) + int(tokens.get("output", 0))
            seen.cost_usd = (seen.cost_usd or 0.0) + float(part.get("cost", 0) or 0)
        return []

    @staticmethod
    def _tool(part: dict[str, Any], seen: _Translation) -> list[AgentEvent]:
        part_id = part.get("id", "")
        state = part.get("state") or {}
        status = state.get("status")
        previous = seen.tool_states.get(part_id)
        events: list[AgentEvent] = []
        tool = part.get("tool", "")
        if status in ("running", "completed", "error") and previous is None:
            fields = {"tool": tool, "input": state.get("input"), "id": part.get("callID")}
            events.append(OutputEvent(OutputType.TOOL_USE, tool, fields))
            seen.tool_states[part_id] = "running"
        if status in ("completed", "error") and seen.tool_states.get(part_id) != "done":
            content = state.get("output") if status == "completed" else state.get("error")
            fields = {"tool_use_id": part.get("callID"), "is_error": status == "error"}
            events.append(OutputEvent(OutputType.TOOL_RESULT, str(content or ""), fields))
            seen.tool_states[part_id] = "done"
        return events

    async def send(self, agent_input: AgentInput) -> None:
        raise InputNotAccepted("this run takes no input: an OpenCode run is one prompt")

    async def stop(self) -> None:
        """Aborts the session, then waits (bounded) until the run has seen it go idle."""
        if self._ended.is_set():
            return
        try:
            await self._client.post(f"/session/{self._seen.session_id}/abort")
        except httpx.HTTPError as exc:
            log.warning("OpenCode abort failed: %s", exc)
        try:
            await asyncio.wait_for(self._ended.wait(), self._abort_wait_s)
        except TimeoutError:
            log.warning("OpenCode session not idle %.0fs after abort; closing", self._abort_wait_s)
            await self._client.aclose()  # ends the event stream, so the run ends
            await asyncio.wait_for(self._ended.wait(), 5)

"""OpenCode: an HTTP/SSE client of `opencode serve` (checked against opencode-ai 1.18.33).

A run is a prompt in an OpenCode session; an interactive run goes on with each follow-up
as a new prompt in the same session. The server's `/event` stream carries the events of
every session of its directory; the run subscribes to it before sending the prompt (so
nothing is missed), keeps its own session's events, and a turn ends when the session goes
idle. The session's permission rules come from the run's permission mode; the requests
OpenCode then asks (`permission.asked`, `question.asked`) go to the API in an interactive
run and are denied at once otherwise (nobody could answer). Every upstream stream and
client is closed when the run ends, however it ends: OpenCode's server leaks listeners of
clients that vanish (anomalyco/opencode #15645, #22198)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncGenerator, Mapping
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
    Close,
    ErrorEvent,
    InputAnswer,
    InputRequestEvent,
    InputResolvedEvent,
    Interrupt,
    Outcome,
    OutputEvent,
    OutputType,
    UserMessage,
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


# OpenCode asks before what its session's rules say `ask` (the last matching rule wins).
# Looking around is never asked about; the permission modes mean what they mean for Claude
# Code, and `plan` also runs OpenCode's read-only planning agent.
_LOOKING = ("read", "glob", "grep", "list", "lsp", "todowrite", "todoread", "question", "skill")
_ASK_FIRST = [
    {"permission": "*", "pattern": "*", "action": "ask"},
    *({"permission": name, "pattern": "*", "action": "allow"} for name in _LOOKING),
]
SESSION_RULES: Mapping[str, list[dict[str, str]]] = {
    "default": _ASK_FIRST,
    "plan": _ASK_FIRST,
    "acceptEdits": [*_ASK_FIRST, {"permission": "edit", "pattern": "*", "action": "allow"}],
    "bypassPermissions": [{"permission": "*", "pattern": "*", "action": "allow"}],
}


def permission_mode(request: AgentRequest) -> str | None:
    """None: the server's own rules. An interactive run asks by default: that is its point."""
    return request.permission_mode or ("default" if request.interactive else None)


@dataclass(slots=True)
class _Translation:
    """What one run has seen of its session, to turn OpenCode events into ours."""

    session_id: str
    interactive: bool
    roles: dict[str, str] = field(default_factory=dict)  # message id -> role
    part_types: dict[str, str] = field(default_factory=dict)  # part id -> type
    streamed: set[str] = field(default_factory=set)  # part ids whose deltas we emitted
    tool_states: dict[str, str] = field(default_factory=dict)  # part id -> status emitted
    tool_inputs: dict[str, Any] = field(default_factory=dict)  # call id -> the tool's input
    open_requests: dict[str, str] = field(default_factory=dict)  # id -> "permission"|"question"
    questions: dict[str, list[Any]] = field(default_factory=dict)  # request id -> questions
    answered: set[str] = field(default_factory=set)  # request ids we replied to
    to_reject: list[str] = field(default_factory=list)  # requests nobody may answer
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    # The turn under way. A turn ends when the session goes idle after the server has shown
    # the user message of every prompt sent: an interrupted turn's session goes idle twice
    # (at the abort, and again once its tool calls wound down), the second time after the
    # next prompt may have been sent.
    prompts_sent: int = 0
    prompts_seen: int = 0
    turn_running: bool = False
    turn_over: bool = False
    last_text: str | None = None
    error: str | None = None


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

    async def start(
        self, run_id: str, request: AgentRequest, secret_env: Mapping[str, str]
    ) -> OpenCodeRun:
        """`secret_env` is not used: the server's processes are its own."""
        refused = request.options_besides({"append_system_prompt"})
        if refused:
            raise AgentStartFailed(f"opencode does not take {', '.join(refused)}")
        settings = self._settings
        base_url = settings.url_template.format(project=request.project_id)
        timeout = httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s)
        client = httpx.AsyncClient(base_url=base_url, auth=self._auth(), timeout=timeout)
        stream = contextlib.AsyncExitStack()
        mode = permission_mode(request)
        options: dict[str, Any] = {}
        model = request.model or settings.model
        if model:
            provider_id, _, model_id = model.partition("/")
            options["model"] = {"providerID": provider_id, "modelID": model_id}
        if mode == "plan":
            options["agent"] = "plan"
        if request.append_system_prompt is not None:
            options["system"] = request.append_system_prompt
        try:
            rules = SESSION_RULES[mode] if mode else None
            session_id = await self._session(client, run_id, request, rules)
            # Subscribe before prompting, so that no event of this prompt is missed.
            source = await stream.enter_async_context(aconnect_sse(client, "GET", "/event"))
            source.response.raise_for_status()
            run = OpenCodeRun(
                client, stream, source, session_id, settings.abort_wait_s, request, options
            )
            await run.prompt(request.prompt)
        except (httpx.HTTPError, KeyError, ValueError, AgentStartFailed) as exc:
            await stream.aclose()
            await client.aclose()
            detail = exc.detail if isinstance(exc, AgentStartFailed) else f"{exc}"
            if "{project}" not in settings.url_template:
                self._note(False, f"OpenCode at {base_url}: {detail}")
            raise AgentStartFailed(f"OpenCode at {base_url}: {detail}") from exc
        return run

    async def _session(
        self,
        client: httpx.AsyncClient,
        run_id: str,
        request: AgentRequest,
        rules: list[dict[str, str]] | None,
    ) -> str:
        if request.session_id:
            response = await client.get(f"/session/{request.session_id}")
            if response.status_code == 404:
                raise AgentStartFailed(f"no session {request.session_id!r}")
            response.raise_for_status()
            if rules is not None:
                path = f"/session/{request.session_id}"
                (await client.patch(path, json={"permission": rules})).raise_for_status()
            return request.session_id
        # A title of our own: without one OpenCode asks the model for a title first.
        body: dict[str, Any] = {"title": f"agent-gateway run {run_id}"}
        if rules is not None:
            body["permission"] = rules
        response = await client.post("/session", json=body)
        response.raise_for_status()
        return str(response.json()["id"])


class _Lost:
    """The event stream is gone for good."""

    def __init__(self, message: str) -> None:
        self.message = message


_WAKE = object()  # the run's state changed from outside (a message, a close, a stop)
_FOUND_IDLE = object()  # after a reconnect the session was idle: what ran has ended


class OpenCodeRun:
    """AgentRun of prompts in an OpenCode session: one, or in an interactive run one per
    user message until it is closed. httpx and JSON errors are translated here: a lost event
    stream is reconnected once, then an ErrorEvent; an event that is not JSON is `unparsed`
    output. A task moves the server's events into an inbox, so that the run also wakes for
    what the API sends it while the server is quiet."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        stream: contextlib.AsyncExitStack,
        source: EventSource,
        session_id: str,
        abort_wait_s: float,
        request: AgentRequest,
        prompt_options: Mapping[str, Any],
    ) -> None:
        self._client = client
        self._stream = stream
        self._source = source
        self._interactive = request.interactive
        self._seen = _Translation(session_id, request.interactive)
        self._abort_wait_s = abort_wait_s
        self._prompt_options = dict(prompt_options)
        self._inbox: asyncio.Queue[object] = asyncio.Queue()
        self._next: list[str] = []  # follow-ups waiting for the turn under way to end
        self._turns = 0
        self._turn_base = (0, 0, 0.0)  # the totals when the turn under way began
        self._interrupted = False
        self._closing = False
        self._stopping = False
        self._lost: str | None = None
        self._ended = asyncio.Event()

    async def prompt(self, text: str) -> None:
        """Starts a turn; httpx errors are the caller's to translate."""
        seen = self._seen
        seen.prompts_sent += 1
        seen.turn_running, seen.turn_over = True, False
        seen.last_text, seen.error = None, None
        self._interrupted = False
        self._turn_base = (seen.input_tokens or 0, seen.output_tokens or 0, seen.cost_usd or 0.0)
        body = {"parts": [{"type": "text", "text": text}], **self._prompt_options}
        path = f"/session/{seen.session_id}/prompt_async"
        (await self._client.post(path, json=body)).raise_for_status()

    async def events(self) -> AsyncGenerator[AgentEvent, None]:
        seen = self._seen
        pump = asyncio.create_task(self._pump())
        try:
            while not self._finished():
                item = await self._inbox.get()
                if isinstance(item, _Lost):
                    yield ErrorEvent(item.message)
                    self._lost = "OpenCode event stream lost"
                    break
                if item is _FOUND_IDLE:
                    seen.turn_over = seen.turn_running
                elif isinstance(item, str):
                    for event in self._translate_sse(item, seen):
                        yield event
                for request_id in seen.to_reject:
                    await self._reply(request_id, allow=False, message=_NOBODY)
                seen.to_reject.clear()
                if seen.turn_over:
                    async for event in self._end_turn():
                        yield event
                while self._next and not seen.turn_running and not self._stopping:
                    async for event in self._follow_up(self._next.pop(0)):
                        yield event
            for event in await self._withdraw_open():
                yield event
            outcome = Outcome(
                result=seen.last_text,
                session_id=seen.session_id,
                input_tokens=seen.input_tokens,
                output_tokens=seen.output_tokens,
                cost_usd=seen.cost_usd,
            )
            # An interactive run goes on after a turn's error; a lost server ends any run.
            error = self._lost or (None if self._interactive else seen.error)
            yield AgentResult(outcome, is_error=error is not None, error=error)
        finally:
            self._ended.set()
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            await self._stream.aclose()
            await self._client.aclose()

    def _finished(self) -> bool:
        """A stop, too, waits for the aborted turn to end (bounded by `stop`)."""
        if self._seen.turn_running or self._seen.turn_over:
            return False
        return self._stopping or not self._interactive or (self._closing and not self._next)

    async def _pump(self) -> None:
        """Moves the server's events into the inbox; a lost stream is reconnected once."""
        source, reconnected = self._source, False
        while True:
            try:
                async for sse in source.aiter_sse():
                    self._inbox.put_nowait(sse.data)
                raise httpx.RemoteProtocolError("the server ended the event stream")
            except httpx.HTTPError as exc:
                if reconnected:
                    self._inbox.put_nowait(_Lost(f"OpenCode event stream lost twice: {exc}"))
                    return
                reconnected = True
                log.warning("OpenCode event stream dropped (%s); reconnecting", exc)
                try:
                    await self._stream.aclose()
                    source = await self._stream.enter_async_context(
                        aconnect_sse(self._client, "GET", "/event")
                    )
                    if await self._session_idle(self._seen.session_id):
                        self._inbox.put_nowait(_FOUND_IDLE)
                except (httpx.HTTPError, ValueError) as again:
                    self._inbox.put_nowait(_Lost(f"OpenCode event stream lost: {again}"))
                    return

    async def _session_idle(self, session_id: str) -> bool:
        statuses = (await self._client.get("/session/status")).json()
        status = statuses.get(session_id) if isinstance(statuses, dict) else None
        return status is None or status.get("type") == "idle"

    async def _end_turn(self) -> AsyncGenerator[AgentEvent, None]:
        seen = self._seen
        seen.turn_running = seen.turn_over = False
        for event in await self._withdraw_open():
            yield event
        if not self._interactive or self._stopping:
            return
        self._turns += 1
        subtype = "interrupted" if self._interrupted else "error" if seen.error else "success"
        yield self._turn_end(seen.last_text or "", subtype)

    def _turn_end(self, result: str, subtype: str) -> OutputEvent:
        seen, (input_base, output_base, cost_base) = self._seen, self._turn_base
        fields = {
            "turn": self._turns,
            "result": result,
            "input_tokens": None if seen.input_tokens is None else seen.input_tokens - input_base,
            "output_tokens": None
            if seen.output_tokens is None
            else seen.output_tokens - output_base,
            "cost_usd": None if seen.cost_usd is None else seen.cost_usd - cost_base,
            "subtype": subtype,
        }
        return OutputEvent(OutputType.TURN_END, result, fields)

    async def _follow_up(self, text: str) -> AsyncGenerator[AgentEvent, None]:
        """A follow-up the server refuses is an error and a turn that ended at once; the
        run waits for the next message."""
        try:
            await self.prompt(text)
        except httpx.HTTPError as exc:
            self._seen.turn_running = False
            self._turns += 1
            yield ErrorEvent(f"OpenCode refused the message: {exc}")
            yield self._turn_end("", "error")

    async def _withdraw_open(self) -> list[AgentEvent]:
        """Requests still open when their turn ended (an abort leaves them listed on the
        server) are rejected there and withdrawn here."""
        seen, events = self._seen, []
        for request_id in list(seen.open_requests):
            await self._reply(request_id, allow=False, message="the turn ended")
            events.append(InputResolvedEvent(request_id, "withdrawn"))
        return events

    # --- translation of the server's events ---------------------------------------------------

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
            message_id = info.get("id", "")
            if info.get("role") == "user" and message_id not in seen.roles:
                seen.prompts_seen += 1
            seen.roles[message_id] = info.get("role", "")
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
            seen.prompts_seen = seen.prompts_sent  # a refused prompt shows no message
            if name != "MessageAbortedError":  # the answer to our own abort
                seen.error = f"{name}: {message}"
                return [ErrorEvent(seen.error, partial_content=seen.last_text)]
        elif kind == "session.idle":
            if seen.turn_running and seen.prompts_seen >= seen.prompts_sent:
                seen.turn_over = True
        elif kind in ("permission.asked", "question.asked"):
            return self._asked(kind, props, seen)
        elif kind in ("permission.replied", "question.replied", "question.rejected"):
            request_id = props.get("requestID", "")
            seen.questions.pop(request_id, None)
            if seen.open_requests.pop(request_id, None) and request_id not in seen.answered:
                return [InputResolvedEvent(request_id, "withdrawn")]  # answered elsewhere
            seen.answered.discard(request_id)
        return []

    @staticmethod
    def _asked(kind: str, props: dict[str, Any], seen: _Translation) -> list[AgentEvent]:
        request_id = str(props["id"])
        if kind == "question.asked":
            questions = list(props.get("questions") or [])
            first = questions[0].get("question") if questions else None
            request = InputRequestEvent(
                request_id, "question", "question", {"questions": questions}, first, questions
            )
            seen.questions[request_id] = questions
        else:
            call_id = (props.get("tool") or {}).get("callID")
            tool_input = seen.tool_inputs.get(call_id) or props.get("metadata") or {}
            patterns = ", ".join(str(p) for p in props.get("patterns") or [])
            description = f"{props.get('permission')}: {patterns}" if patterns else None
            request = InputRequestEvent(
                request_id, "permission", str(props.get("permission")), tool_input, description
            )
        seen.open_requests[request_id] = request.kind
        if seen.interactive:
            return [request]
        seen.to_reject.append(request_id)
        fields = {"subtype": "permission", "tool": request.tool, "input": request.input}
        return [OutputEvent(OutputType.SYSTEM, f"denied {request.tool}: {_NOBODY}", fields)]

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
            seen.tool_inputs[part.get("callID")] = state.get("input")
            fields = {"tool": tool, "input": state.get("input"), "id": part.get("callID")}
            events.append(OutputEvent(OutputType.TOOL_USE, tool, fields))
            seen.tool_states[part_id] = "running"
        if status in ("completed", "error") and seen.tool_states.get(part_id) != "done":
            content = state.get("output") if status == "completed" else state.get("error")
            fields = {"tool_use_id": part.get("callID"), "is_error": status == "error"}
            events.append(OutputEvent(OutputType.TOOL_RESULT, str(content or ""), fields))
            seen.tool_states[part_id] = "done"
            seen.tool_inputs.pop(part.get("callID"), None)
        return events

    # --- input --------------------------------------------------------------------------------

    async def send(self, agent_input: AgentInput) -> None:
        if not self._interactive:
            raise InputNotAccepted("this run takes no input: it was not started interactive")
        if isinstance(agent_input, InputAnswer):
            await self._answer(agent_input)
            return
        if isinstance(agent_input, UserMessage):
            self._next.append(agent_input.text)  # sent once the turn under way has ended
            if agent_input.now:
                await self._abort()
        elif isinstance(agent_input, Interrupt):
            await self._abort()
        elif isinstance(agent_input, Close):
            self._closing = True
        self._inbox.put_nowait(_WAKE)

    async def _answer(self, answer: InputAnswer) -> None:
        kind = self._seen.open_requests.get(answer.request_id)
        if kind is None:
            raise InputNotAccepted(f"no pending request {answer.request_id!r}")
        if kind == "permission" and answer.allow and answer.updated_input is not None:
            raise InputNotAccepted("OpenCode runs a tool as asked: allow or deny, no updated_input")
        answers = None
        if kind == "question" and answer.allow:
            answers = self._answers(answer.request_id, answer.answers or {})
        if not await self._reply(answer.request_id, answer.allow, answer.message, answers):
            raise InputNotAccepted(f"OpenCode did not take the answer to {answer.request_id!r}")

    def _answers(self, request_id: str, answers: Mapping[str, str]) -> list[list[str]]:
        """OpenCode takes one list of chosen labels per question, in the questions' order."""
        chosen = []
        for question in self._seen.questions.get(request_id, []):
            text = question.get("question", "")
            if text not in answers:
                raise InputNotAccepted(f"answers: no answer to {text!r}")
            chosen.append([answers[text]])
        return chosen

    async def _reply(
        self,
        request_id: str,
        allow: bool,
        message: str | None = None,
        answers: list[list[str]] | None = None,
    ) -> bool:
        """Answers a request on the server; False if the server did not take it."""
        seen = self._seen
        kind = seen.open_requests.get(request_id)
        if kind == "permission":
            path, body = f"/permission/{request_id}/reply", {"reply": "once" if allow else "reject"}
            if message and not allow:
                body["message"] = message
        elif allow:
            path, body = f"/question/{request_id}/reply", {"answers": answers or []}
        else:
            path, body = f"/question/{request_id}/reject", {}
        seen.answered.add(request_id)  # its `replied` event may come before the response
        try:
            (await self._client.post(path, json=body)).raise_for_status()
        except httpx.HTTPError as exc:
            seen.answered.discard(request_id)
            log.warning("OpenCode did not take the reply to %s: %s", request_id, exc)
            return False
        seen.open_requests.pop(request_id, None)
        seen.questions.pop(request_id, None)
        return True

    async def _abort(self) -> None:
        if not self._seen.turn_running:
            return
        self._interrupted = True
        try:
            await self._client.post(f"/session/{self._seen.session_id}/abort")
        except httpx.HTTPError as exc:
            log.warning("OpenCode abort failed: %s", exc)

    async def stop(self) -> None:
        """Aborts the session, then waits (bounded) until the run has seen it go idle."""
        if self._ended.is_set():
            return
        self._stopping = True
        self._inbox.put_nowait(_WAKE)
        await self._abort()
        try:
            await asyncio.wait_for(self._ended.wait(), self._abort_wait_s)
        except TimeoutError:
            log.warning("OpenCode session not idle %.0fs after abort; closing", self._abort_wait_s)
            await self._client.aclose()  # ends the event stream, so the run ends
            await asyncio.wait_for(self._ended.wait(), 5)


_NOBODY = "this run is not interactive: nobody can answer"

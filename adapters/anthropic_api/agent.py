"""The Anthropic Messages API through the official SDK's streaming, token by token.

The API keeps no conversation: the gateway keeps each session's turns in its run store and
sends them as history. The request is sent, and its first event awaited, before `start`
returns, so that a refusal (auth, overload, connection) counts as "failed to start" and a
fallback chain moves on."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import anthropic

from domain.errors import AgentStartFailed, InputNotAccepted, SessionNotFound
from domain.model import (
    AgentEvent,
    AgentInput,
    AgentRequest,
    AgentResult,
    Capabilities,
    Close,
    ErrorEvent,
    Interrupt,
    Outcome,
    OutputEvent,
    OutputType,
    Session,
    Turn,
    TurnRole,
    UserMessage,
)
from ports.run_store import RunStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AnthropicSettings:
    model: str
    max_tokens: int = 4096
    system: str | None = None
    api_key: str | None = None  # default: the SDK's own ANTHROPIC_API_KEY
    base_url: str | None = None  # default: the SDK's own ANTHROPIC_BASE_URL or the API
    max_retries: int = 2
    # USD per million tokens, (input, output), by model; unknown models cost None.
    prices: Mapping[str, tuple[float, float]] = field(default_factory=dict)


class AnthropicAgent:
    """CodeAgent for the Messages API: no tools, a streamed answer."""

    def __init__(self, settings: AnthropicSettings, store: RunStore) -> None:
        self._settings = settings
        self._store = store
        self._client = anthropic.AsyncAnthropic(
            api_key=settings.api_key,
            base_url=settings.base_url,
            max_retries=settings.max_retries,
        )

    def capabilities(self) -> Capabilities:
        has_key = bool(self._settings.api_key or os.environ.get("ANTHROPIC_API_KEY"))
        return Capabilities(
            available=has_key,
            detail=f"Messages API, model {self._settings.model}"
            if has_key
            else "no API key: set ANTHROPIC_API_KEY",
            streaming=True,
            resume=True,
            cancel=True,
            token_usage=True,
            models=(self._settings.model,),
        )

    async def start(
        self, run_id: str, request: AgentRequest, secret_env: Mapping[str, str]
    ) -> AnthropicRun:
        """`secret_env` is not used: nothing runs but the API call."""
        refused = request.options_besides(set())  # its system prompt is the deployment's
        if refused:
            raise AgentStartFailed(f"the Messages API provider does not take {', '.join(refused)}")
        session = await self._session(request)
        model = request.model or self._settings.model
        try:
            stream = await self._open(session, request.prompt, model)
        except anthropic.APIError as exc:
            raise AgentStartFailed(_describe(exc)) from exc
        return AnthropicRun(
            stream,
            session,
            request.prompt,
            model,
            self._store,
            self._cost,
            self._open,
            request.interactive,
        )

    async def _open(self, session: Session, prompt: str, model: str) -> Any:
        """One turn's streamed answer: the session's turns as history, then `prompt`."""
        messages = [{"role": str(t.role), "content": t.content} for t in session.turns]
        messages.append({"role": "user", "content": prompt})
        options: dict[str, Any] = {}
        if self._settings.system:
            options["system"] = self._settings.system
        return await self._client.messages.create(
            model=model,
            max_tokens=self._settings.max_tokens,
            messages=messages,  # type: ignore[arg-type]
            stream=True,
            **options,
        )

    async def _session(self, request: AgentRequest) -> Session:
        if request.session_id is None:
            return Session(f"sess_{secrets.token_urlsafe(16)}", request.project_id)
        session = await self._store.get_session(request.session_id)
        if session is None or session.project_id != request.project_id:
            raise SessionNotFound(request.project_id, request.session_id)
        return session

    def _cost(
        self, model: str, input_tokens: int | None, output_tokens: int | None
    ) -> float | None:
        price = self._settings.prices.get(model)
        if price is None or input_tokens is None or output_tokens is None:
            return None
        return (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000


OpenTurn = Callable[[Session, str, str], Awaitable[Any]]


class AnthropicRun:
    """AgentRun of streamed Messages API answers: one, or in an interactive run one per
    user message until it is closed. Each turn is saved to the session when it ends,
    however it ends (a partial reply is what was said)."""

    def __init__(
        self,
        stream: Any,
        session: Session,
        prompt: str,
        model: str,
        store: RunStore,
        cost: Callable[[str, int | None, int | None], float | None],
        open_turn: OpenTurn,
        interactive: bool,
    ) -> None:
        self._stream = stream  # the answer streaming now
        self._session = session
        self._prompt = prompt
        self._model = model
        self._store = store
        self._cost = cost
        self._open_turn = open_turn
        self._interactive = interactive
        self._messages: asyncio.Queue[str | None] = asyncio.Queue()  # None: close
        self._ended = asyncio.Event()
        self._stopping = False
        self._interrupted = False
        self._last_reply = ""

    async def events(self) -> AsyncGenerator[AgentEvent, None]:
        totals = {"input": 0, "output": 0, "cost": 0.0, "counted": 0, "priced": 0}
        error: str | None = None
        turn = 0
        try:
            while True:
                turn += 1
                reply: list[str] = []
                result: dict[str, Any] = {}
                async for event in self._turn(reply, result):
                    yield event
                error = result.get("error")
                for key, name in (("input", "input"), ("output", "output")):
                    if result.get(name) is not None:
                        totals[key] += result[name]
                        totals["counted"] += 1
                if result.get("cost") is not None:
                    totals["cost"] += result["cost"]
                    totals["priced"] += 1
                if not self._interactive or self._stopping:
                    break
                yield OutputEvent(
                    OutputType.TURN_END,
                    "".join(reply),
                    {
                        "turn": turn,
                        "result": "".join(reply),
                        "input_tokens": result.get("input"),
                        "output_tokens": result.get("output"),
                        "cost_usd": result.get("cost"),
                        "subtype": "interrupted" if self._interrupted else "success",
                    },
                )
                if not await self._next_turn():
                    break
            outcome = Outcome(
                result=self._last_reply,
                session_id=self._session.session_id,
                model=self._model,
                input_tokens=totals["input"] if totals["counted"] else None,
                output_tokens=totals["output"] if totals["counted"] else None,
                cost_usd=totals["cost"] if totals["priced"] else None,
            )
            failed = error is not None and not self._interactive
            yield AgentResult(outcome, is_error=failed, error=error if failed else None)
        finally:
            if self._stream is not None:
                await self._stream.close()
            self._ended.set()

    async def _turn(
        self, reply: list[str], result: dict[str, Any]
    ) -> AsyncGenerator[AgentEvent, None]:
        """Streams the current answer; `result` gets its usage, cost and error."""
        self._interrupted = False
        try:
            async for event in self._stream:
                if event.type == "message_start":
                    self._model = event.message.model or self._model
                    result["input"] = event.message.usage.input_tokens
                    result["output"] = event.message.usage.output_tokens
                elif event.type == "content_block_delta":
                    delta = event.delta
                    if delta.type == "text_delta":
                        reply.append(delta.text)
                        yield OutputEvent(OutputType.TEXT, delta.text)
                    elif delta.type == "thinking_delta":
                        yield OutputEvent(OutputType.THINKING, delta.thinking)
                elif event.type == "message_delta" and event.usage is not None:
                    result["output"] = event.usage.output_tokens
                    if getattr(event.usage, "input_tokens", None):
                        result["input"] = event.usage.input_tokens
        except Exception as exc:
            # Mid-stream the SDK lets its HTTP transport's own errors through (httpx or
            # httpx2, by SDK version): any failure while reading is a broken stream,
            # unless we closed it ourselves to stop or interrupt.
            if not (self._stopping or self._interrupted):
                result["error"] = _describe(exc)
                yield ErrorEvent(result["error"], partial_content="".join(reply))
        finally:
            await self._stream.close()
            self._last_reply = "".join(reply)
            result["cost"] = self._cost(self._model, result.get("input"), result.get("output"))
            turns = (Turn(TurnRole.USER, self._prompt), Turn(TurnRole.ASSISTANT, "".join(reply)))
            session = self._session
            self._session = replace(session, turns=session.turns + turns)
            await self._store.save_session(self._session)

    async def _next_turn(self) -> bool:
        """Waits for the user's next message and opens its answer; False once closed. A
        turn that cannot be opened is reported and the run waits for the next message."""
        while True:
            message = await self._messages.get()
            if message is None or self._stopping:
                return False
            self._prompt = message
            try:
                self._stream = await self._open_turn(self._session, message, self._model)
                return True
            except anthropic.APIError as exc:
                log.warning("a follow-up could not be sent: %s", _describe(exc))
                self._stream = _Nothing(_describe(exc))
                return True

    async def send(self, agent_input: AgentInput) -> None:
        if not self._interactive:
            raise InputNotAccepted("this run takes no input: it was not started interactive")
        if isinstance(agent_input, UserMessage):
            self._messages.put_nowait(agent_input.text)
            if agent_input.now:
                await self._interrupt()
        elif isinstance(agent_input, Interrupt):
            await self._interrupt()
        elif isinstance(agent_input, Close):
            self._messages.put_nowait(None)
        else:
            raise InputNotAccepted("the Messages API provider asks nothing: no request to answer")

    async def _interrupt(self) -> None:
        self._interrupted = True
        await self._stream.close()

    async def stop(self) -> None:
        """Closes the response stream; returns once the run has seen that."""
        if self._ended.is_set():
            return
        self._stopping = True
        self._messages.put_nowait(None)
        await self._stream.close()
        await asyncio.wait_for(self._ended.wait(), 10)


class _Nothing:
    """The answer of a turn that could not be opened: no events, one error."""

    def __init__(self, reason: str) -> None:
        self._reason = reason

    def __aiter__(self) -> _Nothing:
        return self

    async def __anext__(self) -> Any:
        raise RuntimeError(self._reason)

    async def close(self) -> None:
        return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, anthropic.APIStatusError):
        return f"Messages API {exc.status_code}: {exc.message}"
    return f"Messages API: {exc}"

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
from collections.abc import AsyncGenerator, Callable, Mapping
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
    ErrorEvent,
    Outcome,
    OutputEvent,
    OutputType,
    Session,
    Turn,
    TurnRole,
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

    async def start(self, run_id: str, request: AgentRequest) -> AnthropicRun:
        if request.interactive:
            raise AgentStartFailed("interactive runs are not supported by anthropic yet")
        session = await self._session(request)
        messages = [{"role": str(t.role), "content": t.content} for t in session.turns]
        messages.append({"role": "user", "content": request.prompt})
        model = request.model or self._settings.model
        options: dict[str, Any] = {}
        if self._settings.system:
            options["system"] = self._settings.system
        try:
            stream = await self._client.messages.create(
                model=model,
                max_tokens=self._settings.max_tokens,
                messages=messages,  # type: ignore[arg-type]
                stream=True,
                **options,
            )
        except anthropic.APIError as exc:
            raise AgentStartFailed(_describe(exc)) from exc
        return AnthropicRun(stream, session, request.prompt, model, self._store, self._cost)

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


class AnthropicRun:
    """AgentRun of one streamed Messages API response; the turn is saved to the session
    when it ends, however it ends."""

    def __init__(
        self,
        stream: Any,
        session: Session,
        prompt: str,
        model: str,
        store: RunStore,
        cost: Callable[[str, int | None, int | None], float | None],
    ) -> None:
        self._stream = stream
        self._session = session
        self._prompt = prompt
        self._model = model
        self._store = store
        self._cost = cost
        self._ended = asyncio.Event()
        self._stopping = False

    async def events(self) -> AsyncGenerator[AgentEvent, None]:
        reply: list[str] = []
        usage = {"input": None, "output": None}
        model = self._model
        error: str | None = None
        try:
            try:
                async for event in self._stream:
                    if event.type == "message_start":
                        model = event.message.model or model
                        usage["input"] = event.message.usage.input_tokens
                        usage["output"] = event.message.usage.output_tokens
                    elif event.type == "content_block_delta":
                        delta = event.delta
                        if delta.type == "text_delta":
                            reply.append(delta.text)
                            yield OutputEvent(OutputType.TEXT, delta.text)
                        elif delta.type == "thinking_delta":
                            yield OutputEvent(OutputType.THINKING, delta.thinking)
                    elif event.type == "message_delta" and event.usage is not None:
                        usage["output"] = event.usage.output_tokens
                        if getattr(event.usage, "input_tokens", None):
                            usage["input"] = event.usage.input_tokens
            except Exception as exc:
                # Mid-stream the SDK lets its HTTP transport's own errors through (httpx or
                # httpx2, by SDK version): any failure while reading is a broken stream,
                # unless we closed it ourselves to stop.
                if not self._stopping:
                    error = _describe(exc)
                    yield ErrorEvent(error, partial_content="".join(reply))
            outcome = Outcome(
                result="".join(reply),
                session_id=self._session.session_id,
                model=model,
                input_tokens=usage["input"],
                output_tokens=usage["output"],
                cost_usd=self._cost(model, usage["input"], usage["output"]),
            )
            yield AgentResult(outcome, is_error=error is not None, error=error)
        finally:
            await self._stream.close()
            # The turn is kept even when it broke off: the partial reply is what was said.
            turns = (Turn(TurnRole.USER, self._prompt), Turn(TurnRole.ASSISTANT, "".join(reply)))
            session = self._session
            await self._store.save_session(replace(session, turns=session.turns + turns))
            self._ended.set()

    async def send(self, agent_input: AgentInput) -> None:
        raise InputNotAccepted("this run takes no input: a Messages API run is one reply")

    async def stop(self) -> None:
        """Closes the response stream; returns once the run has seen that."""
        if self._ended.is_set():
            return
        self._stopping = True
        await self._stream.close()
        await asyncio.wait_for(self._ended.wait(), 10)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, anthropic.APIStatusError):
        return f"Messages API {exc.status_code}: {exc.message}"
    return f"Messages API: {exc}"

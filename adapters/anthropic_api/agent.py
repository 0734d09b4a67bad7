"""The Anthropic Messages API through the official SDK's streaming, token by token.

The API keeps no conversation: the gateway keeps each session's turns in its run store and
sends them as history. The request is sent, and its first event awaited, before `execute`
returns, so that a refusal (auth, overload, connection) counts as "failed to start" and a
fallback chain moves on."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import anthropic

from domain.errors import ProviderUnavailable, SessionNotFound
from domain.model import (
    AgentEvent,
    AgentRequest,
    AgentResult,
    Capabilities,
    ErrorEvent,
    OutputEvent,
    OutputType,
    Session,
    Turn,
    TurnRole,
)
from ports.run_store import RunStore

log = logging.getLogger(__name__)
PROVIDER = "anthropic"


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
        self._streams: dict[str, Any] = {}
        self._ended: dict[str, asyncio.Event] = {}
        self._cancelling: set[str] = set()

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

    async def execute(self, run_id: str, request: AgentRequest) -> AsyncGenerator[AgentEvent, None]:
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
            raise ProviderUnavailable(PROVIDER, _describe(exc)) from exc
        self._streams[run_id] = stream
        self._ended[run_id] = asyncio.Event()
        return self._events(run_id, stream, session, request.prompt, model)

    async def _session(self, request: AgentRequest) -> Session:
        if request.session_id is None:
            return Session(f"sess_{secrets.token_urlsafe(16)}", request.project_id)
        session = await self._store.get_session(request.session_id)
        if session is None or session.project_id != request.project_id:
            raise SessionNotFound(request.project_id, request.session_id)
        return session

    async def _events(
        self, run_id: str, stream: Any, session: Session, prompt: str, model: str
    ) -> AsyncGenerator[AgentEvent, None]:
        reply: list[str] = []
        usage = {"input": None, "output": None}
        error: str | None = None
        try:
            try:
                async for event in stream:
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
                # unless we closed it ourselves to cancel.
                if run_id not in self._cancelling:
                    error = _describe(exc)
                    yield ErrorEvent(error, partial_content="".join(reply))
            text = "".join(reply)
            yield AgentResult(
                is_error=error is not None,
                error=error,
                result=text,
                session_id=session.session_id,
                input_tokens=usage["input"],
                output_tokens=usage["output"],
                cost_usd=self._cost(model, usage["input"], usage["output"]),
                model=model,
            )
        finally:
            self._streams.pop(run_id, None)
            self._cancelling.discard(run_id)
            await stream.close()
            # The turn is kept even when it broke off: the partial reply is what was said.
            turns = (Turn(TurnRole.USER, prompt), Turn(TurnRole.ASSISTANT, "".join(reply)))
            await self._store.save_session(replace(session, turns=session.turns + turns))
            self._ended.pop(run_id, asyncio.Event()).set()

    def _cost(
        self, model: str, input_tokens: int | None, output_tokens: int | None
    ) -> float | None:
        price = self._settings.prices.get(model)
        if price is None or input_tokens is None or output_tokens is None:
            return None
        return (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000

    async def cancel(self, run_id: str) -> None:
        """Closes the response stream; the run ends once its generator has seen that."""
        stream = self._streams.get(run_id)
        ended = self._ended.get(run_id)
        if stream is None or ended is None:
            return
        self._cancelling.add(run_id)
        await stream.close()
        await asyncio.wait_for(ended.wait(), 10)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, anthropic.APIStatusError):
        return f"Messages API {exc.status_code}: {exc.message}"
    return f"Messages API: {exc}"

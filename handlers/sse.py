"""The one module that knows the SSE wire format: events are encoded here, once each, and
sse-starlette sends the bytes (pings, send timeouts, disconnects)."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import orjson
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

from domain.model import DoneEvent, ErrorEvent, GapEvent, OutputEvent, SequencedEvent, StreamEvent

SEPARATOR = "\n"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

EVENT_NAMES: dict[type, bytes] = {
    OutputEvent: b"output",
    ErrorEvent: b"error",
    DoneEvent: b"done",
    GapEvent: b"gap",
}


def event_data(event: StreamEvent) -> dict[str, Any]:
    """The JSON object of an event's `data:` line, as the contract spells it."""
    if isinstance(event, OutputEvent):
        data: dict[str, Any] = {"type": event.type, "content": event.content, **event.fields}
        if event.raw is not None:
            data["raw"] = event.raw
        return data
    if isinstance(event, ErrorEvent):
        data = {"message": event.message}
        if event.partial_content is not None:
            data["partial_content"] = event.partial_content
        return data
    if isinstance(event, DoneEvent):
        outcome = event.outcome
        return {
            "status": event.status,
            "exit_code": outcome.exit_code,
            "duration_ms": event.duration_ms,
            "result": outcome.result,
            "session_id": outcome.session_id,
            "input_tokens": outcome.input_tokens,
            "output_tokens": outcome.output_tokens,
            "cost_usd": outcome.cost_usd,
            "provider": event.provider,
            "model": outcome.model,
            "error": event.error,
        }
    return {"first_available": event.first_available}


def to_json(data: Any) -> bytes:
    """Compact UTF-8 JSON on one line (JSON escapes newlines inside strings, so a `data:`
    line never needs splitting). orjson refuses lone surrogates, which a provider's JSON can
    carry (`"\\ud800"`): those take the standard library's ASCII-escaped way."""
    try:
        return orjson.dumps(data, default=str)
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(data, default=str, separators=(",", ":")).encode()


def encode_event(item: SequencedEvent) -> bytes:
    event = item.event
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (
        item.seq,
        EVENT_NAMES[type(event)],
        to_json(event_data(event)),
    )


class _EncodedEvents:
    """Every subscriber of a stream is handed the same event objects, so each is encoded
    once: recent encodings are kept by object identity, oldest out first (an OrderedDict:
    evicting from a plain dict's front gets slower with every deletion before it). The entry
    holds the object itself, so its id cannot be reused while the entry lives."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[int, tuple[SequencedEvent, bytes]] = OrderedDict()

    def get(self, item: SequencedEvent) -> bytes:
        entry = self._entries.get(id(item))
        if entry is not None and entry[0] is item:
            return entry[1]
        wire = encode_event(item)
        self._entries[id(item)] = (item, wire)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return wire


_encoded = _EncodedEvents(size=4096)


def encode_batch(batch: Sequence[SequencedEvent]) -> bytes:
    """A batch becomes one chunk, so a backlog costs one send, not one per event."""
    get = _encoded.get
    return b"".join([get(item) for item in batch])


def encode_unsequenced(event: str, data: Any) -> bytes:
    """An event outside the run's sequence (the `run` event of a streaming POST): no id,
    so it never moves a client's Last-Event-ID."""
    return b"event: %s\ndata: %s\n\n" % (event.encode(), to_json(data))


def ping() -> ServerSentEvent:
    return ServerSentEvent(comment="ping", sep=SEPARATOR)


class _EventStream(EventSourceResponse):
    def __init__(self, on_send_timeout: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_send_timeout = on_send_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:  # an expected end, not an application error
            self._on_send_timeout()


def event_stream(
    chunks: AsyncIterator[bytes],
    ping_interval_s: float,
    send_timeout_s: float,
    on_send_timeout: Callable[[], None],
) -> EventSourceResponse:
    """A `text/event-stream` response. A client that does not take a chunk within
    `send_timeout_s` is disconnected (and `on_send_timeout` called), so a frozen reader
    cannot hold a task forever."""
    return _EventStream(
        on_send_timeout,
        content=chunks,
        headers=HEADERS,
        ping=ping_interval_s,
        ping_message_factory=ping,
        sep=SEPARATOR,
        send_timeout=send_timeout_s,
    )

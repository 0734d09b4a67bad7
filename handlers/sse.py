"""The one module that knows the SSE wire format (sse-starlette encodes each event)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

from domain.model import SequencedEvent, event_name

SEPARATOR = "\n"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # built once: cheaper


def _json(data: Any) -> str:
    return _ENCODER.encode(data)


def encode_event(item: SequencedEvent) -> bytes:
    return ServerSentEvent(
        data=_json(item.event.to_data()),
        event=event_name(item.event),
        id=str(item.seq),
        sep=SEPARATOR,
    ).encode()


class _EncodedEvents:
    """Every subscriber of a stream is handed the same event objects, so each is encoded
    once: recent encodings are kept by object identity. The entry holds the object itself,
    so its id cannot be reused while the entry lives."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: dict[int, tuple[SequencedEvent, bytes]] = {}

    def get(self, item: SequencedEvent) -> bytes:
        entry = self._entries.get(id(item))
        if entry is not None and entry[0] is item:
            return entry[1]
        wire = encode_event(item)
        self._entries[id(item)] = (item, wire)
        if len(self._entries) > self._size:
            del self._entries[next(iter(self._entries))]  # the oldest
        return wire


_encoded = _EncodedEvents(size=4096)


def encode_batch(batch: Sequence[SequencedEvent]) -> bytes:
    """A batch becomes one chunk, so a backlog costs one send, not one per event."""
    return b"".join([_encoded.get(item) for item in batch])


def encode_unsequenced(event: str, data: Any) -> bytes:
    """An event outside the run's sequence (the `run` event of a streaming POST): no id,
    so it never moves a client's Last-Event-ID."""
    return ServerSentEvent(data=_json(data), event=event, sep=SEPARATOR).encode()


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

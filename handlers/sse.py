"""The one module that knows the SSE wire format: events are encoded here, once each, and
sent by a lean streaming response (pings, send timeouts, disconnects)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from domain.model import (
    DoneEvent,
    ErrorEvent,
    GapEvent,
    InputRequestEvent,
    InputResolvedEvent,
    OutputEvent,
    RunChangedEvent,
    SequencedEvent,
    StatusEvent,
    StreamEvent,
)
from handlers.schemas import RunRecord, input_request_data

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

EVENT_NAMES: dict[type, bytes] = {
    OutputEvent: b"output",
    ErrorEvent: b"error",
    StatusEvent: b"status",
    InputRequestEvent: b"input_request",
    InputResolvedEvent: b"input_resolved",
    DoneEvent: b"done",
    GapEvent: b"gap",
    RunChangedEvent: b"run",
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
    if isinstance(event, InputRequestEvent):
        return input_request_data(event)
    if isinstance(event, InputResolvedEvent):
        return {"request_id": event.request_id, "decision": event.decision, "by": event.by}
    if isinstance(event, StatusEvent):
        if event.position is None:
            return {"status": event.status}
        return {"status": event.status, "position": event.position}
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
    if isinstance(event, RunChangedEvent):
        return RunRecord.from_domain(event.run).model_dump(mode="json")
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


PING = b": ping\n\n"


class OpenStreams:
    """The event streams an app is serving, so that a stopping server can end them all
    cleanly (their clients resume elsewhere with Last-Event-ID)."""

    def __init__(self) -> None:
        self._streams: set[EventStream] = set()

    def add(self, stream: EventStream) -> None:
        self._streams.add(stream)

    def discard(self, stream: EventStream) -> None:
        self._streams.discard(stream)

    def close_all(self) -> None:
        for stream in list(self._streams):
            stream.close()


class EventStream(Response):
    """A `text/event-stream` ASGI response, lean on the hot path: each chunk is one send,
    with no timer of its own. One watchdog per stream, which sleeps until its next deadline,
    sends `: ping` after `ping_interval_s` of silence, cuts a client that has not taken a
    chunk within `send_timeout_s` (calling `on_send_timeout`), and ends the stream when the
    client disconnects or `close()` is called. (sse-starlette, used before, spent a cancel
    scope on every send and four tasks on every stream.)"""

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        ping_interval_s: float,
        send_timeout_s: float,
        on_send_timeout: Callable[[], None],
        open_streams: OpenStreams,
    ) -> None:
        # Not Response.__init__: it would compute a body and its length. FastAPI passes a
        # Response through as it is, and reads only these two.
        self.status_code = 200
        self.background = None
        self._chunks = chunks
        self._ping_interval_s = ping_interval_s
        self._send_timeout_s = send_timeout_s
        self._on_send_timeout = on_send_timeout
        self._open_streams = open_streams
        self._send_lock = asyncio.Lock()  # the pump's chunks and the watchdog's pings
        self._sending_since: float | None = None  # loop time; None: not in a send
        self._last_sent = 0.0
        self._closing = asyncio.Event()

    def close(self) -> None:
        self._closing.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": 200, "headers": _RAW_HEADERS}
        await send(start)
        if scope.get("method") == "HEAD":
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        loop = asyncio.get_running_loop()
        self._last_sent = loop.time()
        self._open_streams.add(self)
        pump = asyncio.ensure_future(self._pump(send, loop))
        try:
            ended = await self._watch(pump, receive, send, loop)
        finally:
            self._open_streams.discard(self)
            if not pump.done():
                pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump  # its own errors propagate
        if ended == "timeout":
            self._on_send_timeout()
            return  # the response stays unfinished: uvicorn closes the connection
        if ended == "done" or (ended == "closed" and self._sending_since is None):
            # a clean end of the chunked body (not to a client stuck in a send)
            with contextlib.suppress(OSError):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _pump(self, send: Send, loop: asyncio.AbstractEventLoop) -> None:
        try:
            async for chunk in self._chunks:
                await self._send(send, chunk, loop)
        finally:
            aclose = getattr(self._chunks, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _watch(
        self,
        pump: asyncio.Future[None],
        receive: Receive,
        send: Send,
        loop: asyncio.AbstractEventLoop,
    ) -> str:
        """Returns why the stream ends: "done", "disconnect", "timeout" or "closed"."""
        disconnect = asyncio.ensure_future(_disconnected(receive))
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            while True:
                now = loop.time()
                if self._sending_since is not None:
                    due = self._sending_since + self._send_timeout_s
                    if now >= due:
                        return "timeout"
                else:
                    due = self._last_sent + self._ping_interval_s
                    if now >= due:
                        if not self._send_lock.locked():  # else a chunk is on its way
                            try:
                                async with asyncio.timeout(self._send_timeout_s):
                                    await self._send(send, PING, loop)
                            except TimeoutError:
                                return "timeout"
                        due = loop.time() + self._ping_interval_s
                waiters: set[asyncio.Future[Any]] = {pump, disconnect, closing}
                await asyncio.wait(waiters, timeout=due - now, return_when="FIRST_COMPLETED")
                if pump.done():
                    return "done"
                if disconnect.done():
                    return "disconnect"
                if closing.done():
                    return "closed"
        finally:
            disconnect.cancel()
            closing.cancel()

    async def _send(self, send: Send, chunk: bytes, loop: asyncio.AbstractEventLoop) -> None:
        async with self._send_lock:
            self._sending_since = loop.time()
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            self._sending_since = None
            self._last_sent = loop.time()


_RAW_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    *((k.lower().encode(), v.encode()) for k, v in HEADERS.items()),
    (b"connection", b"keep-alive"),
]


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def event_stream(
    chunks: AsyncIterator[bytes],
    ping_interval_s: float,
    send_timeout_s: float,
    on_send_timeout: Callable[[], None],
    open_streams: OpenStreams,
) -> EventStream:
    """A `text/event-stream` response. A client that does not take a chunk within
    `send_timeout_s` is disconnected (and `on_send_timeout` called), so a frozen reader
    cannot hold a task forever."""
    return EventStream(chunks, ping_interval_s, send_timeout_s, on_send_timeout, open_streams)

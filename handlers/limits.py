"""Request limits at the HTTP edge: head and body time, body size, request rate per caller."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from domain.access import ApiKey
from domain.errors import GatewayError, LimitExceeded
from domain.ratelimit import TokenBuckets, retry_after_s
from handlers.errors import PayloadTooLarge, RequestTimeout, send_error


class _Refused(BaseException):
    """Not an Exception: FastAPI turns any Exception raised while it parses a body into a
    400, and this must reach the middleware that raised it."""

    def __init__(self, error: GatewayError) -> None:
        self.error = error


class BodyLimitMiddleware:
    """Answers 413 to a body over `max_bytes`, from its Content-Length or, for a chunked
    body, as soon as the bytes read pass the limit (nothing more is read); and 408 to a
    body not received whole within `timeout_s` (a client that trickles or never ends it)."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float) -> None:
        self._app = app
        self._max_bytes = max_bytes
        self._timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if "content-length" not in headers and "transfer-encoding" not in headers:
            # No body (HTTP/1.1): nothing to limit, and no wrapper on every chunk a stream sends.
            await self._app(scope, receive, send)
            return
        too_large = PayloadTooLarge(f"the request body is over {self._max_bytes} bytes")
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self._max_bytes:
            await send_error(send, too_large)
            return
        seen = 0
        body_done = False
        deadline = asyncio.get_running_loop().time() + self._timeout_s
        started = False

        async def limited_receive() -> Message:
            nonlocal seen, body_done
            if body_done:  # later receives wait for a disconnect: no deadline on those
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise _Refused(
                    RequestTimeout(f"the request body took more than {self._timeout_s:g} s")
                ) from None
            seen += len(message.get("body", b""))
            body_done = message["type"] != "http.request" or not message.get("more_body")
            if seen > self._max_bytes:
                raise _Refused(too_large)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._app(scope, limited_receive, tracking_send)
        except _Refused as refused:
            if not started:
                await send_error(send, refused.error)


class RateLimitMiddleware:
    """At most `burst` requests at once and `rate_per_s` a second after that, per API key
    (per stream for stream tokens); past it `429` with Retry-After. Runs after the auth
    middleware: with auth off there is no caller and no limit (loopback only)."""

    def __init__(self, app: ASGIApp, buckets: TokenBuckets) -> None:
        self._app = app
        self._buckets = buckets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller: ApiKey | None = scope.get("state", {}).get("caller")
        if scope["type"] == "http" and caller is not None:
            wait = self._buckets.take(caller.name)
            if wait > 0:
                error = LimitExceeded(
                    "rate", f"too many requests for key {caller.name!r}", retry_after_s(wait)
                )
                await send_error(send, error)
                return
        await self._app(scope, receive, send)


class HeadTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol, plus a deadline for a request's head: a connection that
    sends no complete request line and headers within `head_timeout_s` (after connecting or
    after its last response) is closed. uvicorn alone keeps such a connection open forever
    when it sends a partial head (slowloris), and holds a file descriptor for it."""

    def __init__(self, *args: Any, head_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timeout_s = head_timeout_s
        self._head_timer: asyncio.TimerHandle | None = None

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self._head_timeout_s, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._disarm_head_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_timer()


def head_timeout_protocol(head_timeout_s: float) -> Callable[..., HeadTimeoutProtocol]:
    """What uvicorn's `http=` takes: it builds one protocol per connection."""
    return functools.partial(HeadTimeoutProtocol, head_timeout_s=head_timeout_s)

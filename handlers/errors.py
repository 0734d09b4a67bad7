"""One table from error class to HTTP status and the contract's error body."""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send

from domain.errors import (
    AgentStartFailed,
    BackendUnavailable,
    Conflict,
    CredentialsUnavailable,
    CredentialUnreadable,
    Forbidden,
    GatewayError,
    InputNotAccepted,
    InvalidRequest,
    LimitExceeded,
    NotFound,
    OwnerUnreachable,
    ProviderUnavailable,
    ShuttingDown,
    Unauthenticated,
)


class PayloadTooLarge(GatewayError):
    code = "payload_too_large"


class RequestTimeout(GatewayError):
    code = "request_timeout"


STATUS_BY_ERROR: list[tuple[type[GatewayError], int]] = [
    (Unauthenticated, 401),
    (Forbidden, 403),
    (InvalidRequest, 422),
    (NotFound, 404),
    (ProviderUnavailable, 503),
    (AgentStartFailed, 503),
    (BackendUnavailable, 503),
    (InputNotAccepted, 409),
    (Conflict, 409),
    (ShuttingDown, 503),
    (OwnerUnreachable, 503),
    (CredentialsUnavailable, 503),
    (CredentialUnreadable, 503),
    (LimitExceeded, 429),
    (PayloadTooLarge, 413),
    (RequestTimeout, 408),
]


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def status_for(exc: GatewayError) -> int:
    for cls in type(exc).__mro__:
        for error_class, status in STATUS_BY_ERROR:
            if cls is error_class:
                return status
    return 500


def headers_for(exc: GatewayError) -> dict[str, str]:
    if isinstance(exc, LimitExceeded) and exc.retry_after_s is not None:
        return {"Retry-After": str(exc.retry_after_s)}
    if isinstance(exc, Unauthenticated):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, PayloadTooLarge | RequestTimeout):  # the rest of the body is unread
        return {"Connection": "close"}
    return {}


async def send_error(send: Send, exc: GatewayError) -> None:
    """The error answer, sent from ASGI middleware (outside FastAPI's handlers)."""
    headers = [(b"content-type", b"application/json")]
    headers += [(k.lower().encode(), v.encode()) for k, v in headers_for(exc).items()]
    await send({"type": "http.response.start", "status": status_for(exc), "headers": headers})
    body = json.dumps(error_body(exc.code, exc.message)).encode()
    await send({"type": "http.response.body", "body": body})


def install_error_handlers(app: FastAPI, methods_of_path: Callable[[str], set[str]]) -> None:
    """`methods_of_path` gives every method a path has, for the Allow header of a 405:
    Starlette's names only those of the first route that matches the path
    (`/projects/{id}/runs` has GET and POST in two routes)."""

    async def on_gateway_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, GatewayError)
        return JSONResponse(error_body(exc.code, exc.message), status_for(exc), headers_for(exc))

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [
            f"{'.'.join(str(p) for p in error['loc'] if p != 'body') or 'body'}: {error['msg']}"
            for error in exc.errors()
        ]
        return JSONResponse(error_body("invalid_request", "; ".join(problems)), 422)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(sorted(methods_of_path(request.url.path)))
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            error_body("internal_error", "internal error; see the gateway log"), 500
        )

    app.add_exception_handler(GatewayError, on_gateway_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)

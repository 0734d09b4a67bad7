"""One table from error class to HTTP status and the contract's error body."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.errors import (
    Forbidden,
    GatewayError,
    InvalidRequest,
    LimitExceeded,
    NotFound,
    OwnerUnreachable,
    ProviderUnavailable,
    ShuttingDown,
    Unauthenticated,
)

STATUS_BY_ERROR: list[tuple[type[GatewayError], int]] = [
    (Unauthenticated, 401),
    (Forbidden, 403),
    (InvalidRequest, 422),
    (NotFound, 404),
    (ProviderUnavailable, 503),
    (ShuttingDown, 503),
    (OwnerUnreachable, 503),
    (LimitExceeded, 429),
]


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def status_for(exc: GatewayError) -> int:
    for cls in type(exc).__mro__:
        for error_class, status in STATUS_BY_ERROR:
            if cls is error_class:
                return status
    return 500


def install_error_handlers(app: FastAPI) -> None:
    async def on_gateway_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, GatewayError)
        headers = {}
        if isinstance(exc, LimitExceeded) and exc.retry_after_s is not None:
            headers["Retry-After"] = str(exc.retry_after_s)
        return JSONResponse(error_body(exc.code, exc.message), status_for(exc), headers)

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
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, exc.headers)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            error_body("internal_error", "internal error; see the gateway log"), 500
        )

    app.add_exception_handler(GatewayError, on_gateway_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)

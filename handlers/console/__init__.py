"""`GET /console`: the operator's page. Its files live beside this module and are served
as they are (no build step, no CDN). The page holds no data: it asks for an API key and
calls the API with it, so these paths are open like /healthz."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response

from domain.errors import NotFound

HERE = Path(__file__).parent
MEDIA_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}
# Only our own files run and only our own origin is called: an agent's output that slips
# into markup (it never should: the page sets text, not HTML) can load and run nothing.
POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # stream URLs carry tokens
    "Cache-Control": "no-cache",
}
FILES = {
    path.name: (path.read_bytes(), MEDIA_TYPES[path.suffix])
    for path in HERE.iterdir()
    if path.suffix in MEDIA_TYPES
}

router = APIRouter(include_in_schema=False)


def is_console_path(path: str) -> bool:
    return path == "/console" or path.startswith("/console/")


def _file(name: str) -> Response:
    if name not in FILES:
        raise NotFound(f"the console has no file {name!r}")
    body, media_type = FILES[name]
    return Response(body, media_type=media_type, headers=HEADERS)


@router.get("/console")
async def console_page() -> Response:
    return _file("index.html")


@router.get("/console/{name}")
async def console_file(name: str) -> Response:
    return _file(name)

"""API keys and stream tokens at the HTTP edge: who is calling, and may they do this."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from starlette.datastructures import Headers, QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send

from domain.access import ApiKey, KeyRing, Role, StreamTokens
from domain.errors import Forbidden, NotFound, Unauthenticated
from handlers.console import is_console_path
from handlers.errors import send_error

log = logging.getLogger(__name__)
STREAM_PATH = re.compile(r"^/projects/([^/]+)/events/([^/]+)$")
OPEN_PATHS = {"/healthz"}


class KeysFile:
    """The keys file, reloaded when it changes (checked at most once a second) or when
    `reload()` is called (on SIGHUP). A reload that fails keeps the keys already loaded."""

    def __init__(
        self,
        path: Path,
        check_interval_s: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = path
        self._check_interval_s = check_interval_s
        self._monotonic = monotonic
        self._checked_at = monotonic()
        self._stamp = self._read_stamp()
        self._ring = self._load()  # errors here stop start-up

    def ring(self) -> KeyRing:
        now = self._monotonic()
        if now - self._checked_at >= self._check_interval_s:
            self._checked_at = now
            if self._read_stamp() != self._stamp:
                self.reload()
        return self._ring

    def reload(self) -> None:
        try:
            stamp = self._read_stamp()
            self._ring = self._load()
            self._stamp = stamp
            log.info("reloaded API keys from %s", self._path)
        except (OSError, ValueError) as exc:
            log.error("keeping the previous API keys: cannot load %s: %s", self._path, exc)

    def _read_stamp(self) -> tuple[int, int]:
        stat = os.stat(self._path)
        return stat.st_mtime_ns, stat.st_size

    def _load(self) -> KeyRing:
        return KeyRing.from_document(json.loads(self._path.read_text()))


@dataclass
class Access:
    """Auth settings of one app. `keys is None` means auth is off (loopback only)."""

    keys: KeysFile | None
    tokens: StreamTokens

    def stream_url(self, project_id: str, stream_id: str) -> str:
        url = f"/projects/{project_id}/events/{stream_id}"
        if self.keys is None:
            return url
        return f"{url}?token={self.tokens.issue(project_id, stream_id)}"


class AuthMiddleware:
    """Authenticates every HTTP request but /healthz and the console's files: an API key
    (X-API-Key or Authorization: Bearer), or, on a stream's own URL, its signed token. The
    caller is put in `request.state.caller`; routes check project scope and role."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self._app = app
        self._access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        keys = self._access.keys
        if scope["type"] != "http" or keys is None or self._is_open(scope["path"]):
            await self._app(scope, receive, send)
            return
        caller = self._caller(scope, keys.ring())
        if caller is None:
            await send_error(send, Unauthenticated())
            return
        scope.setdefault("state", {})["caller"] = caller
        await self._app(scope, receive, send)

    @staticmethod
    def _is_open(path: str) -> bool:
        return path in OPEN_PATHS or is_console_path(path)

    def _caller(self, scope: Scope, ring: KeyRing) -> ApiKey | None:
        headers = Headers(scope=scope)
        presented = headers.get("x-api-key")
        authorization = headers.get("authorization", "")
        if presented is None and authorization.lower().startswith("bearer "):
            presented = authorization[7:].strip()
        if presented:
            return ring.authenticate(presented)
        token = QueryParams(scope.get("query_string", b"")).get("token")
        match = STREAM_PATH.match(scope["path"])
        if token and match and scope["method"] == "GET":
            project_id, stream_id = match.groups()
            if self._access.tokens.verify(token, project_id, stream_id):
                name = f"stream-token:{stream_id}"  # rate-limited per stream
                return ApiKey(name, "", frozenset({project_id}), Role.READ)
        return None


def may_read(request: Request, project_id: str) -> bool:
    """Whether the caller may see this project's runs (for listings across projects)."""
    caller: ApiKey | None = getattr(request.state, "caller", None)
    return caller is None or caller.allows(project_id)


def readable_projects(request: Request) -> frozenset[str] | None:
    """The projects the caller may read; None: every project."""
    caller: ApiKey | None = getattr(request.state, "caller", None)
    if caller is None or "*" in caller.projects:
        return None
    return caller.projects


def authorize(request: Request, project_id: str, role: Role) -> None:
    """Raises unless the caller may act on this project with this role. Another project's
    resources are 404, not 403, so ids do not leak."""
    caller: ApiKey | None = getattr(request.state, "caller", None)
    if caller is None:  # auth is off
        return
    if not caller.allows(project_id):
        raise NotFound(f"nothing found in project {project_id!r}")
    if not caller.role.includes(role):
        raise Forbidden(f"the key {caller.name!r} ({caller.role}) may not do what needs {role}")


def authorize_all(request: Request, role: Role) -> None:
    """Raises unless the caller has this role on every project (templates are shared)."""
    caller: ApiKey | None = getattr(request.state, "caller", None)
    if caller is None:
        return
    if "*" not in caller.projects or not caller.role.includes(role):
        raise Forbidden(f"the key {caller.name!r} needs the role {role} on every project ('*')")


class RedactTokens(logging.Filter):
    """Stream tokens are credentials: keep them out of access logs."""

    PATTERN = re.compile(r"token=[^&\s\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self.PATTERN.sub("token=<redacted>", a) if isinstance(a, str) else a
                for a in record.args
            )
        return True

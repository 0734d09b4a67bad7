"""Who may do what: API keys scoped to projects, and signed read-only stream tokens."""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class Role(enum.StrEnum):
    """Each role may do what the ones before it may."""

    READ = "read"  # read only
    RUN = "run"  # start, answer, cancel
    ADMIN = "admin"  # and the project's credentials

    def includes(self, other: Role) -> bool:
        order = list(Role)
        return order.index(self) >= order.index(other)


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    sha256: str  # hex digest of the key; the key itself is never stored
    projects: frozenset[str]
    role: Role

    def allows(self, project_id: str) -> bool:
        return "*" in self.projects or project_id in self.projects


class KeyRing:
    """The configured keys. Lookups hash the presented key and compare digests in constant
    time against every entry, so timing tells nothing about which (if any) matched."""

    def __init__(self, keys: list[ApiKey]) -> None:
        self._keys = keys

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> KeyRing:
        """Parses the keys file's JSON document; ValueError names what is wrong."""
        entries = document.get("keys") if isinstance(document, Mapping) else None
        if not isinstance(entries, list):
            raise ValueError('the keys file must be {"keys": [...]}')
        keys = []
        for index, entry in enumerate(entries):
            where = f"keys[{index}]"
            if not isinstance(entry, Mapping):
                raise ValueError(f"{where} must be an object")
            digest = str(entry.get("sha256", "")).lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(f"{where}.sha256 must be 64 hex digits")
            projects = entry.get("projects")
            if not isinstance(projects, list) or not all(isinstance(p, str) for p in projects):
                raise ValueError(f"{where}.projects must be a list of project ids or '*'")
            try:
                role = Role(entry.get("role", ""))
            except ValueError:
                raise ValueError(f"{where}.role must be 'read', 'run' or 'admin'") from None
            keys.append(ApiKey(str(entry.get("name", where)), digest, frozenset(projects), role))
        return cls(keys)

    def authenticate(self, presented: str) -> ApiKey | None:
        digest = hashlib.sha256(presented.encode()).hexdigest()
        found = None
        for key in self._keys:  # no early exit
            if hmac.compare_digest(digest, key.sha256):
                found = key
        return found


class StreamTokens:
    """Short-lived read-only tokens for one stream: HMAC-SHA256 over project, stream id and
    expiry, so a client that cannot send headers can follow a stream_url."""

    def __init__(self, secret: bytes, ttl_s: float, clock: Callable[[], float] = time.time):
        self._secret = secret
        self._ttl_s = ttl_s
        self._clock = clock

    def issue(self, project_id: str, stream_id: str) -> str:
        expires = int(self._clock() + self._ttl_s)
        return f"{expires}.{self._mac(project_id, stream_id, expires)}"

    def verify(self, token: str, project_id: str, stream_id: str) -> bool:
        expires_text, _, mac = token.partition(".")
        if not expires_text.isdigit() or int(expires_text) < self._clock():
            return False
        expected = self._mac(project_id, stream_id, int(expires_text))
        return hmac.compare_digest(mac, expected)

    def _mac(self, project_id: str, stream_id: str, expires: int) -> str:
        message = f"{project_id}\n{stream_id}\n{expires}".encode()
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

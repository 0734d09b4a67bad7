from __future__ import annotations

from typing import Protocol

from domain.credentials import SealedCredential


class CredentialStore(Protocol):
    """Sealed credentials, by project and name; the store never sees a value.

    Guarantees of every implementation: `put` adds or replaces the project's credential of
    that name; `list` returns a project's credentials ordered by name; `delete` says whether
    there was one; `list_all` returns every project's (to re-encrypt them). Raises
    BackendUnavailable when its backend cannot be reached."""

    async def put(self, credential: SealedCredential) -> None: ...

    async def list_for_project(self, project_id: str) -> list[SealedCredential]: ...

    async def delete(self, project_id: str, name: str) -> bool: ...

    async def list_all(self) -> list[SealedCredential]: ...

"""Sealed credentials in process memory: they die with the process, as its key does."""

from __future__ import annotations

from domain.credentials import SealedCredential


class MemoryCredentialStore:
    def __init__(self) -> None:
        self._by_project: dict[str, dict[str, SealedCredential]] = {}

    async def put(self, credential: SealedCredential) -> None:
        self._by_project.setdefault(credential.project_id, {})[credential.name] = credential

    async def list_for_project(self, project_id: str) -> list[SealedCredential]:
        credentials = self._by_project.get(project_id, {})
        return [credentials[name] for name in sorted(credentials)]

    async def delete(self, project_id: str, name: str) -> bool:
        return self._by_project.get(project_id, {}).pop(name, None) is not None

    async def list_all(self) -> list[SealedCredential]:
        return [
            c for project in sorted(self._by_project) for c in await self.list_for_project(project)
        ]

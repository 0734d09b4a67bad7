from __future__ import annotations

from typing import Protocol

from domain.templates import Project


class ProjectStore(Protocol):
    """Projects' configuration (their template and overrides) by project id. Guarantees:
    `put` adds or replaces; `list` is ordered by project id. Raises BackendUnavailable when
    its backend cannot be reached."""

    async def put_project(self, project: Project) -> None: ...

    async def get_project(self, project_id: str) -> Project | None: ...

    async def list_projects(self) -> list[Project]: ...

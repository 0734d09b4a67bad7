from __future__ import annotations

from typing import Protocol

from domain.templates import Template


class TemplateStore(Protocol):
    """Templates by name. Guarantees: `put` adds or replaces; `list` is ordered by name;
    `delete` says whether there was one. Raises BackendUnavailable when its backend cannot
    be reached."""

    async def put_template(self, template: Template) -> None: ...

    async def get_template(self, name: str) -> Template | None: ...

    async def list_templates(self) -> list[Template]: ...

    async def delete_template(self, name: str) -> bool: ...

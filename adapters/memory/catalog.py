"""Templates and projects in process memory (TemplateStore and ProjectStore)."""

from __future__ import annotations

from domain.templates import Project, Template


class MemoryCatalog:
    def __init__(self) -> None:
        self._templates: dict[str, Template] = {}
        self._projects: dict[str, Project] = {}

    async def put_template(self, template: Template) -> None:
        self._templates[template.name] = template

    async def get_template(self, name: str) -> Template | None:
        return self._templates.get(name)

    async def list_templates(self) -> list[Template]:
        return [self._templates[name] for name in sorted(self._templates)]

    async def delete_template(self, name: str) -> bool:
        return self._templates.pop(name, None) is not None

    async def put_project(self, project: Project) -> None:
        self._projects[project.project_id] = project

    async def get_project(self, project_id: str) -> Project | None:
        return self._projects.get(project_id)

    async def list_projects(self) -> list[Project]:
        return [self._projects[p] for p in sorted(self._projects)]

"""Templates and projects in PostgreSQL (migration 5): a JSON record per row."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from adapters.postgres.errors import translated
from adapters.stored_json import decode_project, decode_template, encode_project, encode_template
from domain.templates import Project, Template


class PostgresCatalog:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    @translated
    async def put_template(self, template: Template) -> None:
        async with self._pool.connection() as connection:
            await connection.execute(
                "INSERT INTO templates (name, record) VALUES (%s, %s)"
                " ON CONFLICT (name) DO UPDATE SET record = excluded.record",
                (template.name, encode_template(template)),
            )

    @translated
    async def get_template(self, name: str) -> Template | None:
        rows = await self._select("SELECT record FROM templates WHERE name = %s", (name,))
        return decode_template(rows[0]) if rows else None

    @translated
    async def list_templates(self) -> list[Template]:
        rows = await self._select("SELECT record FROM templates ORDER BY name", ())
        return [decode_template(row) for row in rows]

    @translated
    async def delete_template(self, name: str) -> bool:
        async with self._pool.connection() as connection:
            cursor = await connection.execute("DELETE FROM templates WHERE name = %s", (name,))
            return cursor.rowcount > 0

    @translated
    async def put_project(self, project: Project) -> None:
        async with self._pool.connection() as connection:
            await connection.execute(
                "INSERT INTO projects (project_id, record) VALUES (%s, %s)"
                " ON CONFLICT (project_id) DO UPDATE SET record = excluded.record",
                (project.project_id, encode_project(project)),
            )

    @translated
    async def get_project(self, project_id: str) -> Project | None:
        rows = await self._select(
            "SELECT record FROM projects WHERE project_id = %s", (project_id,)
        )
        return decode_project(rows[0]) if rows else None

    @translated
    async def list_projects(self) -> list[Project]:
        rows = await self._select("SELECT record FROM projects ORDER BY project_id", ())
        return [decode_project(row) for row in rows]

    async def _select(self, query: str, args: tuple[str, ...]) -> list[bytes]:
        async with self._pool.connection() as connection:
            cursor = await connection.execute(query, args)
            return [bytes(record) for (record,) in await cursor.fetchall()]

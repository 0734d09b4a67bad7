from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from domain.model import Run, RunStatus, Session


class RunStore(Protocol):
    """Run records.

    Guarantees: `save` replaces the record with the same run_id; `get` returns the latest
    saved record or None; `list_recent` returns the runs of `projects` (None: of every
    project), of `status` if given, newest first (by created_at), at most `limit`;
    `find_by_stream` maps a stream id back to its run.
    Sessions (the turns of a conversation) are kept the same way: `save_session` replaces
    the session with the same id."""

    async def save(self, run: Run) -> None: ...

    async def get(self, run_id: str) -> Run | None: ...

    async def find_by_stream(self, stream_id: str) -> Run | None: ...

    async def list_recent(
        self,
        projects: Collection[str] | None,
        status: RunStatus | None = None,
        limit: int = 100,
    ) -> list[Run]: ...

    async def save_session(self, session: Session) -> None: ...

    async def get_session(self, session_id: str) -> Session | None: ...

"""Run records in process memory; lost on restart (the README says so)."""

from __future__ import annotations

from collections.abc import Collection

from domain.model import Run, RunStatus, Session


class MemoryRunStore:
    """RunStore in memory, keeping at most `max_runs_per_project` records per project and
    `max_runs` in all (the oldest finished ones go first; running ones always stay), and
    `max_sessions` sessions holding `max_session_bytes` in all (least recently used go
    first; one larger than that is not kept)."""

    def __init__(
        self,
        max_runs_per_project: int = 1000,
        max_runs: int = 50_000,
        max_sessions: int = 10_000,
        max_session_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        self._max_runs_per_project = max_runs_per_project
        self._max_runs = max_runs
        self._max_sessions = max_sessions
        self._max_session_bytes = max_session_bytes
        self._session_bytes = 0
        self._runs: dict[str, Run] = {}  # in creation order
        self._by_stream: dict[str, str] = {}
        self._by_project: dict[str, list[str]] = {}  # run ids, oldest first
        self._sessions: dict[str, Session] = {}

    async def save(self, run: Run) -> None:
        is_new = run.run_id not in self._runs
        self._runs[run.run_id] = run
        if is_new:
            self._by_stream[run.stream_id] = run.run_id
            self._by_project.setdefault(run.project_id, []).append(run.run_id)
            self._trim(self._by_project[run.project_id], self._max_runs_per_project)
            self._trim(self._runs, self._max_runs)

    async def get(self, run_id: str) -> Run | None:
        return self._runs.get(run_id)

    async def find_by_stream(self, stream_id: str) -> Run | None:
        run_id = self._by_stream.get(stream_id)
        return self._runs.get(run_id) if run_id else None

    async def list_recent(
        self,
        projects: Collection[str] | None,
        status: RunStatus | None = None,
        limit: int = 100,
    ) -> list[Run]:
        # Insertion order is creation order; wall clock time may step backwards.
        if projects is not None and len(projects) == 1:
            (project_id,) = projects
            candidates = (self._runs[r] for r in reversed(self._by_project.get(project_id, [])))
        else:
            candidates = reversed(self._runs.values())
        found = []
        for run in candidates:
            if (projects is None or run.project_id in projects) and status in (None, run.status):
                found.append(run)
                if len(found) == limit:
                    break
        return found

    async def save_session(self, session: Session) -> None:
        self._forget_session(session.session_id)  # most recently used last
        if session.size > self._max_session_bytes:
            return
        self._sessions[session.session_id] = session
        self._session_bytes += session.size
        while (
            len(self._sessions) > self._max_sessions
            or self._session_bytes > self._max_session_bytes
        ):
            self._forget_session(next(iter(self._sessions)))

    async def get_session(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    def _forget_session(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        if session is not None:
            self._session_bytes -= session.size

    def _trim(self, run_ids: Collection[str], limit: int) -> None:
        """Forgets the oldest finished runs among `run_ids` (oldest first) past `limit`."""
        while len(run_ids) > limit:
            victim = next((rid for rid in run_ids if self._runs[rid].status.finished), None)
            if victim is None:
                return
            run = self._runs.pop(victim)
            self._by_stream.pop(run.stream_id, None)
            project_runs = self._by_project[run.project_id]
            project_runs.remove(victim)
            if not project_runs:  # the number of projects stays bounded too
                del self._by_project[run.project_id]

"""How a run ends: its final status, record and `done` event."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from domain.model import AgentResult, DoneEvent, Outcome, Run, RunStatus
from domain.runs.active import StopReason


def final_status(
    stop_reason: StopReason | None, result: AgentResult | None, failure: str | None
) -> tuple[RunStatus, str | None]:
    """(status, error). A stop decides first, then a failure of the drive, then the agent."""
    if stop_reason is StopReason.TIMED_OUT:
        return RunStatus.TIMED_OUT, stop_reason.value
    if stop_reason is not None:  # cancelled whatever the exit code (claude exits 0 on SIGINT)
        return RunStatus.CANCELLED, stop_reason.value
    if failure is not None:
        return RunStatus.FAILED, failure
    if result is None:
        return RunStatus.FAILED, "the agent ended without reporting a result"
    if result.is_error:
        return RunStatus.FAILED, result.error or "the agent reported an error"
    exit_code = result.outcome.exit_code
    if exit_code not in (None, 0):  # None: a provider without processes
        return RunStatus.FAILED, result.error or f"agent exited with code {exit_code}"
    return RunStatus.SUCCEEDED, None


def final_record(
    run: Run,
    status: RunStatus,
    outcome: Outcome,
    error: str | None,
    finished_at: datetime,
    duration_ms: int | None,
) -> tuple[Run, DoneEvent]:
    """A finished run's record and its `done` event, built from one outcome. A session
    the agent did not report is the one the run was asked to continue."""
    if outcome.session_id is None and run.outcome.session_id is not None:
        outcome = replace(outcome, session_id=run.outcome.session_id)
    final = replace(
        run,
        status=status,
        finished_at=finished_at,
        outcome=outcome,
        error=error,
        pending_inputs=(),  # nothing waits for an answer any more
    )
    return final, DoneEvent(status, outcome, duration_ms, run.provider, error)

"""Domain objects to JSON and back, as they are kept in Redis."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

from domain.model import (
    DoneEvent,
    ErrorEvent,
    GapEvent,
    OutputEvent,
    OutputType,
    Run,
    RunStatus,
    Session,
    StreamEvent,
    Turn,
    TurnRole,
    event_name,
)


def encode_event(event: StreamEvent) -> str:
    data = event.to_data()
    if isinstance(event, OutputEvent):  # keep fields apart from the wire's flat shape
        data = {
            "type": str(event.type),
            "content": event.content,
            "fields": dict(event.fields),
            "raw": event.raw,
        }
    return json.dumps({"kind": event_name(event), "data": data}, separators=(",", ":"))


def decode_event(text: str | bytes) -> StreamEvent:
    envelope = json.loads(text)
    kind, data = envelope["kind"], envelope["data"]
    if kind == "output":
        return OutputEvent(OutputType(data["type"]), data["content"], data["fields"], data["raw"])
    if kind == "error":
        return ErrorEvent(data["message"], data.get("partial_content"))
    if kind == "gap":
        return GapEvent(data["first_available"])
    return DoneEvent(**{**data, "status": RunStatus(data["status"])})


def encode_run(run: Run) -> str:
    data = asdict(run)
    for name in ("created_at", "started_at", "finished_at"):
        data[name] = data[name].isoformat() if data[name] else None
    data["metadata"] = dict(run.metadata)
    return json.dumps(data, separators=(",", ":"))


def decode_run(text: str | bytes) -> Run:
    data: dict[str, Any] = json.loads(text)
    for name in ("created_at", "started_at", "finished_at"):
        data[name] = datetime.fromisoformat(data[name]) if data[name] else None
    data["status"] = RunStatus(data["status"])
    data["providers_skipped"] = tuple(data["providers_skipped"])
    return Run(**data)


def encode_session(session: Session) -> str:
    turns = [{"role": str(t.role), "content": t.content} for t in session.turns]
    return json.dumps(
        {"session_id": session.session_id, "project_id": session.project_id, "turns": turns}
    )


def decode_session(text: str | bytes) -> Session:
    data = json.loads(text)
    turns = tuple(Turn(TurnRole(t["role"]), t["content"]) for t in data["turns"])
    return Session(data["session_id"], data["project_id"], turns)

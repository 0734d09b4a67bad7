"""Domain objects to JSON and back, as they are kept in Redis: a storage schema of its own,
not the wire format, so either can change without the other. Short keys: a stream holds
many thousands of these."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

import orjson

from domain.model import (
    AgentRequest,
    DoneEvent,
    ErrorEvent,
    GapEvent,
    Outcome,
    OutputEvent,
    OutputType,
    QueuedRun,
    Run,
    RunStatus,
    Session,
    StatusEvent,
    StreamEvent,
    Turn,
    TurnRole,
)


def _dumps(data: Any) -> bytes:
    try:
        return orjson.dumps(data)
    except (TypeError, orjson.JSONEncodeError):  # lone surrogates, huge integers
        return json.dumps(data, separators=(",", ":")).encode()


def _loads(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # what _dumps wrote the standard library's way
        return json.loads(text)


def encode_event(event: StreamEvent) -> bytes:
    if isinstance(event, OutputEvent):
        data: dict[str, Any] = {"k": "o", "t": event.type, "c": event.content}
        if event.fields:
            data["f"] = dict(event.fields)
        if event.raw is not None:
            data["r"] = event.raw
    elif isinstance(event, ErrorEvent):
        data = {"k": "e", "m": event.message, "p": event.partial_content}
    elif isinstance(event, StatusEvent):
        data = {"k": "s", "s": event.status, "n": event.position}
    elif isinstance(event, DoneEvent):
        data = {
            "k": "d",
            "s": event.status,
            "o": asdict(event.outcome),
            "ms": event.duration_ms,
            "pv": event.provider,
            "er": event.error,
        }
    else:
        data = {"k": "g", "f": event.first_available}
    return _dumps(data)


def decode_event(text: str | bytes) -> StreamEvent:
    data = _loads(text)
    kind = data["k"]
    if kind == "o":
        return OutputEvent(OutputType(data["t"]), data["c"], data.get("f", {}), data.get("r"))
    if kind == "e":
        return ErrorEvent(data["m"], data["p"])
    if kind == "s":
        return StatusEvent(RunStatus(data["s"]), data["n"])
    if kind == "d":
        status = RunStatus(data["s"])
        return DoneEvent(status, Outcome(**data["o"]), data["ms"], data["pv"], data["er"])
    return GapEvent(data["f"])


def encode_run(run: Run) -> bytes:
    data = asdict(run)
    for name in ("created_at", "started_at", "finished_at"):
        data[name] = data[name].isoformat() if data[name] else None
    data["metadata"] = dict(run.metadata)
    return _dumps(data)


def decode_run(text: str | bytes) -> Run:
    data: dict[str, Any] = _loads(text)
    for name in ("created_at", "started_at", "finished_at"):
        data[name] = datetime.fromisoformat(data[name]) if data[name] else None
    data["status"] = RunStatus(data["status"])
    data["providers_skipped"] = tuple(data["providers_skipped"])
    data["outcome"] = Outcome(**data["outcome"])
    return Run(**data)


def encode_session(session: Session) -> bytes:
    turns = [{"role": t.role, "content": t.content} for t in session.turns]
    return _dumps(
        {"session_id": session.session_id, "project_id": session.project_id, "turns": turns}
    )


def decode_session(text: str | bytes) -> Session:
    data = _loads(text)
    turns = tuple(Turn(TurnRole(t["role"]), t["content"]) for t in data["turns"])
    return Session(data["session_id"], data["project_id"], turns)


def encode_queued(entry: QueuedRun) -> bytes:
    request = asdict(entry.request)
    request["metadata"] = dict(entry.request.metadata)
    return _dumps(
        {
            "run_id": entry.run_id,
            "stream_id": entry.stream_id,
            "request": request,
            "queued_at": entry.queued_at.isoformat(),
            "deadline": entry.deadline.isoformat() if entry.deadline else None,
        }
    )


def decode_queued(text: str | bytes) -> QueuedRun:
    data = _loads(text)
    request = data["request"]
    request["providers"] = tuple(request["providers"])
    deadline = data["deadline"]
    return QueuedRun(
        data["run_id"],
        data["stream_id"],
        AgentRequest(**request),
        datetime.fromisoformat(data["queued_at"]),
        datetime.fromisoformat(deadline) if deadline else None,
    )

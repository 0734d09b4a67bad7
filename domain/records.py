"""Domain values as plain JSON-ready dicts and back, as the stores keep them (Redis,
PostgreSQL): one storage schema, not the wire format, so either can change without the
other. Short keys for events: a stream holds many thousands of them."""

from __future__ import annotations

import base64
from dataclasses import asdict
from datetime import datetime
from typing import Any

from domain.credentials import SealedCredential
from domain.model import (
    AgentInput,
    AgentRequest,
    Close,
    DoneEvent,
    ErrorEvent,
    GapEvent,
    InputAnswer,
    InputRequestEvent,
    InputResolvedEvent,
    Interrupt,
    Outcome,
    OutputEvent,
    OutputType,
    QueuedRun,
    Run,
    RunChangedEvent,
    RunStatus,
    Session,
    StatusEvent,
    StreamEvent,
    Transcript,
    Turn,
    TurnRole,
    UserMessage,
)
from domain.templates import Project, RunSettings, Template, with_nested_options
from domain.webhooks import Delivery

Record = dict[str, Any]


def event_record(event: StreamEvent) -> Record:
    if isinstance(event, OutputEvent):
        data: Record = {"k": "o", "t": event.type, "c": event.content}
        if event.fields:
            data["f"] = dict(event.fields)
        if event.raw is not None:
            data["r"] = event.raw
        return data
    if isinstance(event, ErrorEvent):
        return {"k": "e", "m": event.message, "p": event.partial_content}
    if isinstance(event, StatusEvent):
        return {"k": "s", "s": event.status, "n": event.position}
    if isinstance(event, DoneEvent):
        return {
            "k": "d",
            "s": event.status,
            "o": asdict(event.outcome),
            "ms": event.duration_ms,
            "pv": event.provider,
            "er": event.error,
        }
    if isinstance(event, InputRequestEvent):
        return {"k": "i", **input_request_record(event)}
    if isinstance(event, InputResolvedEvent):
        return {"k": "r", "id": event.request_id, "d": event.decision, "by": event.by}
    if isinstance(event, RunChangedEvent):
        return {"k": "u", "run": run_record(event.run)}
    return {"k": "g", "f": event.first_available}


def input_request_record(event: InputRequestEvent) -> Record:
    return {
        "request_id": event.request_id,
        "kind": event.kind,
        "tool": event.tool,
        "input": dict(event.input),
        "description": event.description,
        "questions": event.questions,
    }


def input_request_from_record(data: Record) -> InputRequestEvent:
    return InputRequestEvent(
        data["request_id"],
        data["kind"],
        data["tool"],
        data["input"],
        data["description"],
        data["questions"],
    )


def event_from_record(data: Record) -> StreamEvent:
    kind = data["k"]
    if kind == "o":
        return OutputEvent(OutputType(data["t"]), data["c"], data.get("f", {}), data.get("r"))
    if kind == "e":
        return ErrorEvent(data["m"], data["p"])
    if kind == "s":
        return StatusEvent(RunStatus(data["s"]), data["n"])
    if kind == "i":
        return input_request_from_record(data)
    if kind == "r":
        return InputResolvedEvent(data["id"], data["d"], data["by"])
    if kind == "d":
        status = RunStatus(data["s"])
        return DoneEvent(status, Outcome(**data["o"]), data["ms"], data["pv"], data["er"])
    if kind == "u":
        return RunChangedEvent(run_from_record(data["run"]))
    return GapEvent(data["f"])


def run_record(run: Run) -> Record:
    data = asdict(run)
    for name in ("created_at", "started_at", "finished_at"):
        data[name] = data[name].isoformat() if data[name] else None
    data["metadata"] = dict(run.metadata)
    data["pending_inputs"] = [input_request_record(event) for event in run.pending_inputs]
    return data


def run_from_record(data: Record) -> Run:
    data = dict(data)
    for name in ("created_at", "started_at", "finished_at"):
        data[name] = datetime.fromisoformat(data[name]) if data[name] else None
    data["status"] = RunStatus(data["status"])
    data["providers_skipped"] = tuple(data["providers_skipped"])
    data["outcome"] = Outcome(**data["outcome"])
    pending = data.get("pending_inputs", ())  # records from before interactive runs lack it
    data["pending_inputs"] = tuple(input_request_from_record(event) for event in pending)
    data["credentials"] = tuple(data.get("credentials", ()))
    data.setdefault("template", None)
    data.setdefault("settings", {})
    data.setdefault("pipeline", None)
    return Run(**data)


def credential_record(credential: SealedCredential) -> Record:
    data = asdict(credential)
    data["sealed"] = base64.b64encode(credential.sealed).decode()
    data["created_at"] = credential.created_at.isoformat()
    data["updated_at"] = credential.updated_at.isoformat()
    return data


def credential_from_record(data: Record) -> SealedCredential:
    return SealedCredential(
        data["project_id"],
        data["name"],
        data["env"],
        base64.b64decode(data["sealed"]),
        data["fingerprint"],
        datetime.fromisoformat(data["created_at"]),
        datetime.fromisoformat(data["updated_at"]),
    )


def template_record(template: Template) -> Record:
    return {
        "name": template.name,
        "settings": template.settings.as_record(),
        "source": template.source,
        "updated_at": template.updated_at.isoformat(),
    }


def template_from_record(data: Record) -> Template:
    settings = RunSettings.from_record(data["settings"])
    return Template(
        data["name"], settings, data["source"], datetime.fromisoformat(data["updated_at"])
    )


def project_record(project: Project) -> Record:
    return {
        "project_id": project.project_id,
        "template": project.template,
        "overrides": project.overrides.as_record(),
        "updated_at": project.updated_at.isoformat(),
    }


def project_from_record(data: Record) -> Project:
    overrides = RunSettings.from_record(data["overrides"])
    updated_at = datetime.fromisoformat(data["updated_at"])
    return Project(data["project_id"], data["template"], overrides, updated_at)


def delivery_record(delivery: Delivery) -> Record:
    data = asdict(delivery)
    data["body"] = base64.b64encode(delivery.body).decode()
    data["created_at"] = delivery.created_at.isoformat()
    data["next_attempt_at"] = delivery.next_attempt_at.isoformat()
    return data


def delivery_from_record(data: Record) -> Delivery:
    values = dict(data)
    values["body"] = base64.b64decode(values["body"])
    values["created_at"] = datetime.fromisoformat(values["created_at"])
    values["next_attempt_at"] = datetime.fromisoformat(values["next_attempt_at"])
    return Delivery(**values)


def session_record(session: Session) -> Record:
    turns = [{"role": t.role, "content": t.content} for t in session.turns]
    data: Record = {
        "session_id": session.session_id,
        "project_id": session.project_id,
        "turns": turns,
    }
    if session.transcript is not None:
        data["transcript"] = {
            "path": session.transcript.path,
            "content": base64.b64encode(session.transcript.content).decode(),
            "key_id": session.transcript.key_id,
        }
    return data


def session_from_record(data: Record) -> Session:
    turns = tuple(Turn(TurnRole(t["role"]), t["content"]) for t in data["turns"])
    transcript = None
    if (kept := data.get("transcript")) is not None:
        content = base64.b64decode(kept["content"])
        transcript = Transcript(kept["path"], content, kept["key_id"])
    return Session(data["session_id"], data["project_id"], turns, transcript)


def input_record(agent_input: AgentInput, by: str | None) -> Record:
    """An input for a run on another replica, with who sent it."""
    if isinstance(agent_input, InputAnswer):
        return {
            "t": "answer",
            "by": by,
            "id": agent_input.request_id,
            "allow": agent_input.allow,
            "message": agent_input.message,
            "updated_input": dict(agent_input.updated_input or {}) or None,
            "answers": dict(agent_input.answers or {}) or None,
        }
    if isinstance(agent_input, UserMessage):
        return {"t": "message", "by": by, "text": agent_input.text, "now": agent_input.now}
    return {"t": "interrupt" if isinstance(agent_input, Interrupt) else "close", "by": by}


def input_from_record(data: Record) -> tuple[AgentInput, str | None]:
    kind, by = data["t"], data["by"]
    if kind == "answer":
        answer = InputAnswer(
            data["id"], data["allow"], data["message"], data["updated_input"], data["answers"]
        )
        return answer, by
    if kind == "message":
        return UserMessage(data["text"], data["now"]), by
    return (Interrupt() if kind == "interrupt" else Close()), by


def queued_record(entry: QueuedRun) -> Record:
    request = asdict(entry.request)
    request["metadata"] = dict(entry.request.metadata)
    request["settings"] = dict(entry.request.settings)
    return {
        "run_id": entry.run_id,
        "stream_id": entry.stream_id,
        "request": request,
        "queued_at": entry.queued_at.isoformat(),
        "deadline": entry.deadline.isoformat() if entry.deadline else None,
    }


def queued_from_record(data: Record) -> QueuedRun:
    request = with_nested_options(dict(data["request"]))
    request["providers"] = tuple(request["providers"])
    for name in ("credentials", "allowed_tools", "disallowed_tools"):
        request[name] = tuple(request.get(name, ()))
    deadline = data["deadline"]
    return QueuedRun(
        data["run_id"],
        data["stream_id"],
        AgentRequest(**request),
        datetime.fromisoformat(data["queued_at"]),
        datetime.fromisoformat(deadline) if deadline else None,
    )

"""Domain values as JSON bytes and back, as the Redis and PostgreSQL adapters keep them:
the domain's storage records (domain/records.py) in orjson; and `dumps`, the one JSON
encoder of the adapters (orjson, the standard library for what orjson refuses)."""

from __future__ import annotations

import json
from typing import Any

import orjson

from domain.credentials import SealedCredential
from domain.model import AgentInput, QueuedRun, Run, Session, StreamEvent
from domain.records import (
    credential_from_record,
    credential_record,
    delivery_from_record,
    delivery_record,
    event_from_record,
    event_record,
    input_from_record,
    input_record,
    project_from_record,
    project_record,
    queued_from_record,
    queued_record,
    run_from_record,
    run_record,
    session_from_record,
    session_record,
    template_from_record,
    template_record,
)
from domain.templates import Project, Template
from domain.webhooks import Delivery


def dumps(data: Any) -> bytes:
    """Compact JSON on one line (JSON escapes newlines inside strings)."""
    try:
        return orjson.dumps(data)
    except (TypeError, orjson.JSONEncodeError):  # lone surrogates, huge integers
        return json.dumps(data, separators=(",", ":")).encode()


def _loads(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # what dumps wrote the standard library's way
        return json.loads(text)


def encode_event(event: StreamEvent) -> bytes:
    return dumps(event_record(event))


def decode_event(text: str | bytes) -> StreamEvent:
    return event_from_record(_loads(text))


def encode_run(run: Run) -> bytes:
    return dumps(run_record(run))


def decode_run(text: str | bytes) -> Run:
    return run_from_record(_loads(text))


def encode_session(session: Session) -> bytes:
    return dumps(session_record(session))


def decode_session(text: str | bytes) -> Session:
    return session_from_record(_loads(text))


def encode_queued(entry: QueuedRun) -> bytes:
    return dumps(queued_record(entry))


def decode_queued(text: str | bytes) -> QueuedRun:
    return queued_from_record(_loads(text))


def encode_input(agent_input: AgentInput, by: str | None) -> bytes:
    return dumps(input_record(agent_input, by))


def decode_input(text: str | bytes) -> tuple[AgentInput, str | None]:
    return input_from_record(_loads(text))


def encode_credential(credential: SealedCredential) -> bytes:
    return dumps(credential_record(credential))


def decode_credential(text: str | bytes) -> SealedCredential:
    return credential_from_record(_loads(text))


def encode_template(template: Template) -> bytes:
    return dumps(template_record(template))


def decode_template(text: str | bytes) -> Template:
    return template_from_record(_loads(text))


def encode_project(project: Project) -> bytes:
    return dumps(project_record(project))


def decode_project(text: str | bytes) -> Project:
    return project_from_record(_loads(text))


def encode_delivery(delivery: Delivery) -> bytes:
    return dumps(delivery_record(delivery))


def decode_delivery(text: str | bytes) -> Delivery:
    return delivery_from_record(_loads(text))

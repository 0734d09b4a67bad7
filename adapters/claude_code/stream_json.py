"""Claude Code's `--output-format stream-json` lines -> the contract's events."""

from __future__ import annotations

import json
from typing import Any

import orjson

from domain.lines import LineDecoder
from domain.model import AgentResult, Outcome, OutputEvent, OutputType


class StreamJsonParser:
    """Feed it stdout bytes as they come; it returns events for every completed line.

    Text and thinking arrive twice when `--include-partial-messages` is on: as
    `stream_event` deltas, then in the full `assistant` message. The deltas are emitted (they
    come first, token by token) and the same blocks of the later message are skipped."""

    def __init__(self) -> None:
        self._lines = LineDecoder()
        self._message_id: str | None = None
        self._streamed: set[tuple[str | None, str]] = set()  # (message id, block type)
        self.result: dict[str, Any] | None = None
        self.session_id: str | None = None
        self.model: str | None = None  # as the init line reports it

    def feed(self, chunk: bytes) -> list[OutputEvent]:
        return [e for line in self._lines.feed(chunk) for e in self.parse_line(line)]

    def finish(self) -> list[OutputEvent]:
        return [e for line in self._lines.finish() for e in self.parse_line(line)]

    def agent_result(self, exit_code: int | None) -> AgentResult:
        result = self.result or {}
        usage = result.get("usage") if isinstance(result.get("usage"), dict) else {}
        outcome = Outcome(
            exit_code=exit_code,
            result=_str_or_none(result.get("result")),
            session_id=_str_or_none(result.get("session_id")) or self.session_id,
            model=self.model,
            input_tokens=_int_or_none(usage.get("input_tokens")),
            output_tokens=_int_or_none(usage.get("output_tokens")),
            cost_usd=_float_or_none(result.get("total_cost_usd")),
        )
        return AgentResult(outcome, bool(result.get("is_error", False)), _result_error(result))

    def parse_line(self, line: str) -> list[OutputEvent]:
        if not line.strip():
            return []
        try:
            obj = orjson.loads(line)  # the hot path: several times faster than json.loads
        except orjson.JSONDecodeError:  # also nesting past its limit, and lone surrogates
            return [OutputEvent(OutputType.UNPARSED, line)]
        if not isinstance(obj, dict):
            return [OutputEvent(OutputType.UNPARSED, line)]
        try:
            return self._parse_object(obj)
        except (TypeError, KeyError, AttributeError, ValueError):
            # JSON of an unexpected shape: keep it verbatim rather than guess.
            return [OutputEvent(OutputType.UNPARSED, line)]

    def _parse_object(self, obj: dict[str, Any]) -> list[OutputEvent]:
        kind = obj.get("type")
        if kind == "stream_event":
            return self._stream_event(obj["event"])
        if kind == "assistant":
            return self._assistant(obj["message"])
        if kind == "user":
            return self._user(obj["message"], obj)
        if kind == "system":
            return [self._system(obj)]
        if kind == "result":
            self.result = obj
            if isinstance(obj.get("session_id"), str):
                self.session_id = obj["session_id"]
            return []
        return [OutputEvent(OutputType.SYSTEM, str(kind), {"subtype": "unknown"}, raw=obj)]

    def _system(self, obj: dict[str, Any]) -> OutputEvent:
        subtype = str(obj.get("subtype", ""))
        fields: dict[str, Any] = {"subtype": subtype}
        if subtype == "init":
            self.session_id = _str_or_none(obj.get("session_id")) or self.session_id
            self.model = _str_or_none(obj.get("model")) or self.model
            fields.update(session_id=obj.get("session_id"), model=obj.get("model"))
            fields["tools"] = obj.get("tools", [])
        return OutputEvent(OutputType.SYSTEM, subtype, fields, raw=obj)

    def _stream_event(self, event: dict[str, Any]) -> list[OutputEvent]:
        kind = event.get("type")
        if kind == "message_start":
            self._message_id = event["message"].get("id")
            return []
        if kind != "content_block_delta":
            return []
        delta = event["delta"]
        if delta.get("type") == "text_delta":
            self._streamed.add((self._message_id, "text"))
            return [OutputEvent(OutputType.TEXT, delta["text"])]
        if delta.get("type") == "thinking_delta":
            self._streamed.add((self._message_id, "thinking"))
            return [OutputEvent(OutputType.THINKING, delta["thinking"])]
        return []  # tool input deltas: the complete tool_use follows in the assistant line

    def _assistant(self, message: dict[str, Any]) -> list[OutputEvent]:
        message_id = message.get("id")
        events = []
        for block in message.get("content") or []:
            kind = block.get("type")
            if kind in ("text", "thinking") and (message_id, kind) in self._streamed:
                continue
            if kind == "text":
                events.append(OutputEvent(OutputType.TEXT, block["text"]))
            elif kind == "thinking":
                events.append(OutputEvent(OutputType.THINKING, block.get("thinking", "")))
            elif kind == "tool_use":
                fields = {"tool": block["name"], "input": block.get("input"), "id": block.get("id")}
                events.append(OutputEvent(OutputType.TOOL_USE, block["name"], fields))
        return events

    def _user(self, message: dict[str, Any], obj: dict[str, Any]) -> list[OutputEvent]:
        content = message.get("content")
        if not isinstance(content, list):
            return []
        events = []
        for block in content:
            if block.get("type") != "tool_result":
                continue
            fields = {
                "tool_use_id": block.get("tool_use_id"),
                "is_error": bool(block.get("is_error", False)),
            }
            text = _flatten(block.get("content"))
            events.append(OutputEvent(OutputType.TOOL_RESULT, text, fields))
        return events


def _flatten(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            item.get("text", "") if isinstance(item, dict) else str(item) for item in content
        )
    return "" if content is None else json.dumps(content)


def _result_error(result: dict[str, Any]) -> str | None:
    if not result.get("is_error"):
        return None
    return str(result.get("result") or result.get("subtype") or "claude reported an error")


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float_or_none(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None

"""Claude Code's `--output-format stream-json` lines -> the contract's events."""

from __future__ import annotations

import json
from typing import Any

import orjson

from domain.lines import LineDecoder
from domain.model import (
    AgentResult,
    InputRequestEvent,
    InputResolvedEvent,
    Outcome,
    OutputEvent,
    OutputType,
)

ParsedEvent = OutputEvent | InputRequestEvent | InputResolvedEvent
QUESTION_TOOL = "AskUserQuestion"  # its permission request is a question for the user


class StreamJsonParser:
    """Feed it stdout bytes as they come; it returns events for every completed line.

    Text and thinking arrive twice when `--include-partial-messages` is on: as
    `stream_event` deltas, then in the full `assistant` message. The deltas are emitted (they
    come first, token by token) and the same blocks of the later message are skipped."""

    def __init__(self, interactive: bool = False) -> None:
        self._interactive = interactive  # each `result` ends a turn, not the run
        self._lines = LineDecoder()
        self._message_id: str | None = None
        self._streamed: set[tuple[str | None, str]] = set()  # (message id, block type)
        self.result: dict[str, Any] | None = None
        self.session_id: str | None = None
        self.model: str | None = None  # as the init line reports it
        # Totals over the turns: `usage` is per turn, `total_cost_usd` the session's so far.
        self.turns = 0
        self._input_tokens: int | None = None
        self._output_tokens: int | None = None
        self._cost_usd: float | None = None
        self.unanswerable: list[str] = []  # control requests of a kind nobody here answers

    def feed(self, chunk: bytes) -> list[ParsedEvent]:
        return [e for line in self._lines.feed(chunk) for e in self.parse_line(line)]

    def finish(self) -> list[ParsedEvent]:
        return [e for line in self._lines.finish() for e in self.parse_line(line)]

    def agent_result(self, exit_code: int | None) -> AgentResult:
        result = self.result or {}
        outcome = Outcome(
            exit_code=exit_code,
            result=_str_or_none(result.get("result")),
            session_id=_str_or_none(result.get("session_id")) or self.session_id,
            model=self.model,
            input_tokens=self._input_tokens,
            output_tokens=self._output_tokens,
            cost_usd=self._cost_usd,
        )
        return AgentResult(outcome, bool(result.get("is_error", False)), _result_error(result))

    def parse_line(self, line: str) -> list[ParsedEvent]:
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

    def _parse_object(self, obj: dict[str, Any]) -> list[ParsedEvent]:
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
            return self._result(obj)
        if kind == "control_request":
            return self._control_request(obj)
        if kind == "control_cancel_request":  # the agent no longer waits for it
            return [InputResolvedEvent(str(obj["request_id"]), "withdrawn")]
        if kind == "control_response":  # the agent's answer to our interrupt
            return []
        return [OutputEvent(OutputType.SYSTEM, str(kind), {"subtype": "unknown"}, raw=obj)]

    def _result(self, obj: dict[str, Any]) -> list[ParsedEvent]:
        self.result = obj
        if isinstance(obj.get("session_id"), str):
            self.session_id = obj["session_id"]
        usage = obj.get("usage") if isinstance(obj.get("usage"), dict) else {}
        turn_input = _int_or_none(usage.get("input_tokens"))
        turn_output = _int_or_none(usage.get("output_tokens"))
        if turn_input is not None:
            self._input_tokens = (self._input_tokens or 0) + turn_input
        if turn_output is not None:
            self._output_tokens = (self._output_tokens or 0) + turn_output
        session_cost = _float_or_none(obj.get("total_cost_usd"))
        turn_cost = None
        if session_cost is not None:
            turn_cost = session_cost - (self._cost_usd or 0.0)
            self._cost_usd = session_cost
        self.turns += 1
        if not self._interactive:
            return []
        fields = {
            "turn": self.turns,
            "result": _str_or_none(obj.get("result")),
            "input_tokens": turn_input,
            "output_tokens": turn_output,
            "cost_usd": turn_cost,
            "subtype": obj.get("subtype"),
        }
        return [OutputEvent(OutputType.TURN_END, str(obj.get("result") or ""), fields)]

    def _control_request(self, obj: dict[str, Any]) -> list[ParsedEvent]:
        request_id, request = str(obj["request_id"]), obj["request"]
        if request.get("subtype") != "can_use_tool":
            self.unanswerable.append(request_id)
            return [
                OutputEvent(OutputType.SYSTEM, "control_request", {"subtype": "unknown"}, raw=obj)
            ]
        tool = str(request["tool_name"])
        tool_input = request.get("input") if isinstance(request.get("input"), dict) else {}
        question = tool == QUESTION_TOOL
        return [
            InputRequestEvent(
                request_id,
                "question" if question else "permission",
                tool,
                tool_input,
                _str_or_none(request.get("description")),
                tool_input.get("questions") if question else None,
            )
        ]

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

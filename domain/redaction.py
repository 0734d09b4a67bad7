"""No credential value leaves the gateway: every outgoing string has each value of the
run's project replaced by `***`, also in the forms an agent commonly prints it in (base64 at
any alignment, standard and URL-safe; percent-encoded), and also when a value is split
across consecutive text deltas (`TextStream` holds back what could be the start of one).

One regular expression per run matches every form: the forms are merged into a trie first,
so a scan costs one pass over the text whatever the number of values (measured in
benchmarks/redaction_bench.py)."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import quote, quote_plus

from domain.model import (
    AgentEvent,
    AgentResult,
    ErrorEvent,
    InputRequestEvent,
    Outcome,
    OutputEvent,
    OutputType,
)

MASK = "***"
MIN_VALUE_LENGTH = 8  # shorter values cannot be told from ordinary text
_MIN_FORM_LENGTH = 6


def forms_of(value: str) -> set[str]:
    """The value and its common encodings. A value base64-encoded inside a longer text
    starts at any of three alignments: of each, the characters that depend on the value's
    bytes alone."""
    raw = value.encode()
    forms = {value, quote(value, safe=""), quote_plus(value)}
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        start, end = -(-offset * 8 // 6), (offset + len(raw)) * 8 // 6
        core = encoded[start:end]
        forms |= {core, core.replace("+", "-").replace("/", "_")}
    return {form for form in forms if len(form) >= _MIN_FORM_LENGTH}


def _trie_pattern(words: Iterable[str]) -> str:
    """A regular expression matching any of `words`, longest first, as a trie: one branch
    per next character instead of one per word."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        branches = [re.escape(char) + build(child) for char, child in node.items() if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if "" in node:  # a word ends here; a longer one is tried first
            return f"(?:{body})?"
        return body

    return build(trie)


class Redactor:
    """Replaces the given values (and their forms) in strings and in JSON-like values.
    `count` is how many replacements it made."""

    def __init__(self, values: Iterable[str]) -> None:
        forms = {form for value in values if value for form in forms_of(value)}
        self._pattern = re.compile(_trie_pattern(forms)) if forms else None
        # Every proper prefix of a form, by length: what a stream must hold back.
        self._prefixes = {form[:n] for form in forms for n in range(1, len(form))}
        self._longest = max((len(form) for form in forms), default=0)
        self.count = 0

    @property
    def active(self) -> bool:
        return self._pattern is not None

    def text(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        redacted, replaced = self._pattern.subn(MASK, text)
        self.count += replaced
        return redacted

    def value(self, value: Any) -> Any:
        """Strings inside dicts, lists and tuples too (keys included)."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.value(key): self.value(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.value(item) for item in value)
        return value

    def stream(self) -> TextStream:
        return TextStream(self)

    def _hold_from(self, text: str, start: int) -> int:
        """Where the longest suffix of text[start:] that could begin a form starts."""
        for index in range(max(start, len(text) - self._longest + 1), len(text)):
            if text[index:] in self._prefixes:
                return index
        return len(text)

    def _split(self, text: str) -> tuple[str, str]:
        """(what may go out now, redacted; what to hold back). A value completed inside
        the text is redacted even if a longer form could still be coming."""
        assert self._pattern is not None
        cut = self._hold_from(text, 0)
        out: list[str] = []
        position = 0
        for match in self._pattern.finditer(text):
            if match.start() >= cut:
                break
            out += [text[position : match.start()], MASK]
            self.count += 1
            position = match.end()
            if position > cut:  # the held suffix began inside this value: hold after it
                cut = self._hold_from(text, position)
        out.append(text[position:cut])
        return "".join(out), text[cut:]


class TextStream:
    """Redacts consecutive pieces of one text (the deltas of one output type): a piece's
    end that could be the start of a value is held back and goes out with the next piece,
    or with `flush` when the text ends."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._held = ""

    def feed(self, piece: str) -> str:
        if not self._redactor.active:
            return piece
        out, self._held = self._redactor._split(self._held + piece)
        return out

    def flush(self) -> str:
        held, self._held = self._held, ""
        return self._redactor.text(held)


class EventRedaction:
    """One run's events, redacted before they are published: strings of every event (its
    fields and raw object too); text and thinking deltas through a TextStream each, whose
    held-back end goes out before any other event and when the run ends."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self._streams: dict[OutputType, TextStream] = {}

    def event(self, event: AgentEvent) -> list[AgentEvent]:
        redactor = self.redactor
        if not redactor.active:
            return [event]
        if isinstance(event, OutputEvent) and event.type in _STREAMED and not event.raw:
            out: list[AgentEvent] = [*self.flush(keep=event.type)]
            stream = self._streams.setdefault(event.type, redactor.stream())
            content = stream.feed(event.content)
            if content:
                out.append(replace(event, content=content, fields=redactor.value(event.fields)))
            return out
        return [*self.flush(), self._whole(event)]

    def flush(self, keep: OutputType | None = None) -> list[OutputEvent]:
        """What the streams hold back, as deltas of their own (but `keep`'s)."""
        out: list[OutputEvent] = []
        for output_type, stream in self._streams.items():
            if output_type is not keep:
                held = stream.flush()
                if held:
                    out.append(OutputEvent(output_type, held))
        return out

    def _whole(self, event: AgentEvent) -> AgentEvent:
        value = self.redactor.value
        if isinstance(event, OutputEvent):
            return replace(
                event,
                content=value(event.content),
                fields=value(dict(event.fields)),
                raw=value(event.raw),
            )
        if isinstance(event, ErrorEvent):
            return ErrorEvent(value(event.message), value(event.partial_content))
        if isinstance(event, InputRequestEvent):
            return replace(
                event,
                tool=value(event.tool),
                input=value(dict(event.input)),
                description=value(event.description),
                questions=value(event.questions),
            )
        if isinstance(event, AgentResult):
            return replace(event, outcome=self.outcome(event.outcome), error=value(event.error))
        return event

    def outcome(self, outcome: Outcome) -> Outcome:
        return replace(outcome, result=self.redactor.value(outcome.result))


_STREAMED = (OutputType.TEXT, OutputType.THINKING)


class ValuesInUse:
    """The credential values of the runs under way on this replica, for strings that are no
    run's own (log lines). Read from any thread: a lookup takes the current redactor, which
    is replaced whole when a run with credentials starts or ends."""

    def __init__(self) -> None:
        self._by_run: dict[str, list[str]] = {}
        self._redactor = Redactor([])

    def add(self, run_id: str, values: list[str]) -> None:
        if values:
            self._by_run[run_id] = values
            self._rebuild()

    def remove(self, run_id: str) -> None:
        if self._by_run.pop(run_id, None) is not None:
            self._rebuild()

    def text(self, text: str) -> str:
        return self._redactor.text(text)

    @property
    def count(self) -> int:
        return self._redactor.count

    def _rebuild(self) -> None:
        counted = self._redactor.count
        self._redactor = Redactor(v for values in self._by_run.values() for v in values)
        self._redactor.count = counted

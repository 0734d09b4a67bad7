"""No credential value leaves the gateway: every outgoing string has each value of the
run's project replaced by `***`, also in the forms an agent commonly prints it in (base64 at
any alignment, standard and URL-safe; percent-encoded; escaped in JSON or a repr), and also
when a value is split across consecutive text deltas (`TextStream` holds back what could be
the start of one; a stderr or status line in between does not end it).

One regular expression per run matches every form: the forms are merged into a trie first,
so a scan costs one pass over the text whatever the number of values (measured in
benchmarks/redaction_bench.py)."""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, quote_plus

from domain.model import (
    AgentEvent,
    AgentResult,
    ErrorEvent,
    InputRequestEvent,
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
    # As a JSON string or a Python repr shows it (quotes, backslashes, newlines escaped).
    forms |= {json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    forms |= {repr(value)[1:-1]}
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        start, end = -(-offset * 8 // 6), (offset + len(raw)) * 8 // 6
        core = encoded[start:end]
        forms |= {core, core.replace("+", "-").replace("/", "_")}
    return {form for form in forms if len(form) >= _MIN_FORM_LENGTH}


@dataclass(frozen=True, slots=True, eq=False)  # compared and hashed by identity
class _Forms:
    """The compiled matchers of a set of values, shared by the runs that have them."""

    whole: re.Pattern[str]  # any form
    by_first: Mapping[str, tuple[str, ...]]  # the forms by their first character
    longest: int


def _trie(words: Iterable[str]) -> dict[str, Any]:
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}
    return trie


def _any_word(root: dict[str, Any]) -> str:
    """A pattern of the words of the trie, longest first, one branch per next character.
    Built children first with a stack of its own: a value may be thousands of characters,
    deeper than Python's recursion goes."""
    patterns: dict[int, str] = {}
    stack: list[tuple[dict[str, Any], bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if not children_done:
            stack.append((node, True))
            stack.extend((child, False) for char, child in node.items() if char)
            continue
        branches = [
            re.escape(char) + patterns.pop(id(child)) for char, child in node.items() if char
        ]
        if not branches:
            patterns[id(node)] = ""
            continue
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        patterns[id(node)] = f"(?:{body})?" if "" in node else body  # a word may end here
    return patterns[id(root)]


@functools.lru_cache(maxsize=256)
def _compiled(values: frozenset[str]) -> _Forms | None:
    """Compiling takes some 25 ms for 50 values: once per set of values, not per run."""
    forms = {form for value in values if value for form in forms_of(value)}
    if not forms:
        return None
    by_first: dict[str, list[str]] = {}
    for form in forms:
        by_first.setdefault(form[0], []).append(form)
    longest = max(len(form) for form in forms)
    starts = {first: tuple(group) for first, group in by_first.items()}
    return _Forms(re.compile(_any_word(_trie(forms))), starts, longest)


class Redactor:
    """Replaces the given values (and their forms) in strings and in JSON-like values.
    `count` is how many replacements it made."""

    def __init__(self, values: Iterable[str]) -> None:
        self._forms = _compiled(frozenset(values))
        self.count = 0

    @property
    def active(self) -> bool:
        return self._forms is not None

    @property
    def key(self) -> object:
        """The same for redactors of the same values."""
        return self._forms

    def copy(self) -> Redactor:
        """A redactor of the same values with a count of its own."""
        twin = Redactor(())
        twin._forms = self._forms
        return twin

    def text(self, text: str) -> str:
        if self._forms is None or not text:
            return text
        redacted, replaced = self._forms.whole.subn(MASK, text)
        self.count += replaced
        return redacted

    def value(self, value: Any) -> Any:
        """Strings inside dicts, lists and tuples too (keys included)."""
        if self._forms is None:
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
        forms = self._forms
        assert forms is not None
        by_first = forms.by_first
        for index in range(max(start, len(text) - forms.longest + 1), len(text)):
            candidates = by_first.get(text[index])
            if candidates is not None:
                tail = text[index:]
                if any(form.startswith(tail) for form in candidates):
                    return index
        return len(text)

    def _split(self, text: str) -> tuple[str, str]:
        """(what may go out now, redacted; what to hold back). A value completed inside
        the text is redacted even if a longer form could still be coming."""
        assert self._forms is not None
        cut = self._hold_from(text, 0)
        if cut == len(text) and not self._forms.whole.search(text):
            return text, ""  # the common case: nothing to mask, nothing to hold
        out: list[str] = []
        position = 0
        for match in self._forms.whole.finditer(text):
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
            out: list[AgentEvent] = []
            stream = self._streams.get(event.type)
            if stream is None:
                stream = self._streams[event.type] = redactor.stream()
            content = stream.feed(event.content)
            if content == event.content and not event.fields:
                out.append(event)  # the common case: nothing masked, nothing held
            elif content:
                out.append(replace(event, content=content, fields=redactor.value(event.fields)))
            return out
        if isinstance(event, OutputEvent) and event.type in _BESIDE_THE_TEXT:
            return [self._whole(event)]  # a value may go on in the next delta: still held
        return [*self.flush(), self._whole(event)]

    def flush(self) -> list[OutputEvent]:
        """What the streams hold back, as deltas of their own: at the end of a block of
        text (a tool call, a result, the turn's or the run's end)."""
        out: list[OutputEvent] = []
        for output_type, stream in self._streams.items():
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
            outcome = replace(event.outcome, result=value(event.outcome.result))
            return replace(event, outcome=outcome, error=value(event.error))
        return event


_STREAMED = (OutputType.TEXT, OutputType.THINKING)
# What may come between two deltas of one text (another channel, the CLI's status lines).
_BESIDE_THE_TEXT = (OutputType.STDERR, OutputType.SYSTEM)


class ValuesInUse:
    """The credential values of the runs under way on this replica, for strings that are
    no run's own (log lines). One redactor per set of values (a project's runs share one),
    counted by its runs; read from any thread (a lookup takes the current tuple, replaced
    whole when the first run of a set starts or its last ends)."""

    def __init__(self) -> None:
        self._in_use: dict[object, tuple[Redactor, int]] = {}
        self._redactors: tuple[Redactor, ...] = ()

    def add(self, redactor: Redactor) -> None:
        if redactor.active:
            key = redactor.key
            held, runs = self._in_use.get(key, (redactor.copy(), 0))  # counts of its own
            self._in_use[key] = (held, runs + 1)
            self._redactors = tuple(r for r, _ in self._in_use.values())

    def remove(self, redactor: Redactor) -> None:
        key = redactor.key
        if key not in self._in_use:
            return
        held, runs = self._in_use[key]
        if runs > 1:
            self._in_use[key] = (held, runs - 1)
        else:
            del self._in_use[key]
        self._redactors = tuple(r for r, _ in self._in_use.values())

    def text(self, text: str) -> str:
        for redactor in self._redactors:
            text = redactor.text(text)
        return text

"""Turns a byte stream split anywhere into whole text lines."""

from __future__ import annotations

import codecs

MAX_LINE_CHARS = 16 * 1024 * 1024


class LineDecoder:
    """Incremental UTF-8 decoder and line reassembler.

    Chunks may split a character or a line anywhere, and a line may be longer than any chunk.
    Invalid bytes become U+FFFD rather than an error: output is kept, never dropped. A line
    longer than `max_line_chars` comes out in pieces of that size, so an agent that writes
    without newlines cannot make the gateway hold its whole output."""

    def __init__(self, max_line_chars: int = MAX_LINE_CHARS) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending: list[str] = []
        self._pending_chars = 0
        self._max_line_chars = max_line_chars

    def feed(self, chunk: bytes) -> list[str]:
        """Returns the lines completed by `chunk`, without their line endings."""
        text = self._decoder.decode(chunk)
        if "\n" not in text:
            if text:
                self._pending.append(text)
                self._pending_chars += len(text)
            return self._overflow() if self._pending_chars > self._max_line_chars else []
        parts = text.split("\n")
        parts[0] = "".join(self._pending) + parts[0]
        tail = parts.pop()
        self._pending = [tail] if tail else []
        self._pending_chars = len(tail)
        lines = [line.removesuffix("\r") for line in parts]
        if self._pending_chars > self._max_line_chars:
            lines += self._overflow()
        return lines

    def _overflow(self) -> list[str]:
        """The pending part of an over-long line, in pieces of the maximum size."""
        text = "".join(self._pending)
        cut = len(text) - len(text) % self._max_line_chars
        self._pending = [text[cut:]] if cut < len(text) else []
        self._pending_chars = len(text) - cut
        size = self._max_line_chars
        return [text[i : i + size] for i in range(0, cut, size)]

    def finish(self) -> list[str]:
        """Returns the last line if the stream did not end with a newline."""
        rest = "".join(self._pending) + self._decoder.decode(b"", final=True)
        self._pending = []
        self._pending_chars = 0
        return [rest.removesuffix("\r")] if rest else []

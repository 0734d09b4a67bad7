"""Turns a byte stream split anywhere into whole text lines."""

from __future__ import annotations

import codecs


class LineDecoder:
    """Incremental UTF-8 decoder and line reassembler.

    Chunks may split a character or a line anywhere, and a line may be longer than any chunk.
    Invalid bytes become U+FFFD rather than an error: output is kept, never dropped."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending: list[str] = []

    def feed(self, chunk: bytes) -> list[str]:
        """Returns the lines completed by `chunk`, without their line endings."""
        text = self._decoder.decode(chunk)
        if "\n" not in text:
            if text:
                self._pending.append(text)
            return []
        parts = text.split("\n")
        parts[0] = "".join(self._pending) + parts[0]
        tail = parts.pop()
        self._pending = [tail] if tail else []
        return [line.removesuffix("\r") for line in parts]

    def finish(self) -> list[str]:
        """Returns the last line if the stream did not end with a newline."""
        rest = "".join(self._pending) + self._decoder.decode(b"", final=True)
        self._pending = []
        return [rest.removesuffix("\r")] if rest else []

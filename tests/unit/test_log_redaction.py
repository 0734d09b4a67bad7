"""Log lines have every credential value of the runs under way masked, in text and in JSON
(whose escaping of quotes and newlines would hide a value from a scan of the finished line)."""

from __future__ import annotations

import io
import logging

import pytest

from domain.redaction import Redactor, ValuesInUse
from handlers.logs import TEXT_FORMAT, JsonFormatter, RedactingFormatter, RunContextFilter

VALUE = 'pa"ss\nword-0123456789'


@pytest.mark.parametrize("inner", [JsonFormatter(), logging.Formatter(TEXT_FORMAT)])
def test_messages_arguments_and_exceptions_are_masked(inner):
    in_use = ValuesInUse()
    in_use.add(Redactor([VALUE]))
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RunContextFilter())
    handler.setFormatter(RedactingFormatter(inner, in_use.text))
    log = logging.getLogger("test-log-redaction")
    log.addHandler(handler)
    try:
        log.warning("the agent said %r and %s", VALUE, VALUE)
        try:
            raise RuntimeError(f"failed with {VALUE}")
        except RuntimeError:
            log.exception("crash")
    finally:
        log.removeHandler(handler)
    text = out.getvalue()
    assert "***" in text and "word-0123456789" not in text and "failed with ***" in text

"""Log set-up for `serve`: text or one JSON object per line, each line of a run naming it."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from domain.logcontext import current_run
from handlers.auth import RedactTokens

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(run_prefix)s%(message)s"


class RunContextFilter(logging.Filter):
    """Adds the run the logging code works for (none outside a run) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        run = current_run()
        record.run_id = run.run_id if run else None
        record.project_id = run.project_id if run else None
        record.run_prefix = f"[run {run.run_id} project {run.project_id}] " if run else ""
        return True


class RedactingFormatter(logging.Formatter):
    """Every credential value of the runs under way replaced in the message and the
    exception before `inner` formats them (JSON would escape a value's quotes and newlines
    past recognition), and in the whole line after."""

    def __init__(self, inner: logging.Formatter, redact: Callable[[str], str]) -> None:
        super().__init__()
        self._inner = inner
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        redacted = logging.makeLogRecord(record.__dict__)
        redacted.msg, redacted.args = self._redact(record.getMessage()), None
        if record.exc_info:
            redacted.exc_text = self._redact(self._inner.formatException(record.exc_info))
            redacted.exc_info = None
        return self._redact(self._inner.format(redacted))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "run_id": getattr(record, "run_id", None),
            "project_id": getattr(record, "project_id", None),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:  # formatted (and redacted) already
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


def configure_logging(level: str, fmt: str) -> None:
    """One handler on the root logger; uvicorn's loggers propagate to it (serve passes
    `log_config=None` to uvicorn), so its lines get the same format."""
    handler = logging.StreamHandler()
    handler.addFilter(RunContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.getLogger().handlers[:] = [handler]
    root = logging.getLogger()
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").addFilter(RedactTokens())  # tokens are credentials


def redact_logs(redact: Callable[[str], str]) -> None:
    """Every line of the root logger's handlers goes through `redact` (once the gateway,
    which knows the credentials in use, is built)."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(RedactingFormatter(handler.formatter or logging.Formatter(), redact))

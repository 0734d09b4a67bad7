"""Log set-up for `serve`: text or one JSON object per line, each line of a run naming it."""

from __future__ import annotations

import json
import logging
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
        return json.dumps(line, ensure_ascii=False)


def configure_logging(level: str, fmt: str) -> None:
    """One handler on the root logger; uvicorn's loggers propagate to it (serve passes
    `log_config=None` to uvicorn), so its lines get the same format."""
    handler = logging.StreamHandler()
    handler.addFilter(RunContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").addFilter(RedactTokens())  # tokens are credentials

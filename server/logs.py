"""The server's log lines: plain text or one JSON object per line (ASKTA_LOG_FORMAT), each
carrying the id of the request it was written for.

`log_config` is a `logging.config.dictConfig` dictionary: `askta serve` hands it to
uvicorn (its `log_config`), and an app started another way (`uvicorn --factory
server.web.app:create_app`) applies it at start-up unless the process's logging is
set up already (the root logger has a handler). The request id is set per request by
server/web/observability.py and read here from a context variable, so every line
written while a request is handled carries it, whichever logger wrote it.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

# The id of the request being handled in this context ("" outside one).
request_id: ContextVar[str] = ContextVar("askta_request_id", default="")

# An X-Request-ID a client (or a proxy in front) may choose: a short, plain token.
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# What an access line adds to a record, in this order in the JSON object.
ACCESS_FIELDS = ("method", "path", "status", "duration_ms")
ACCESS_LOGGER = "askta.access"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def accept_request_id(value: str | None) -> str:
    """The incoming X-Request-ID if it is a sane token (<= 64 of [A-Za-z0-9._-]),
    else a new random id."""
    if value and REQUEST_ID_RE.match(value):
        return value
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every record (`record.request_id`, "" if none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp (UTC, ISO 8601), level, logger, message,
    request_id, the access fields when the record has them, and exception text."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id.get() or None,
        }
        for name in ACCESS_FIELDS:
            if hasattr(record, name):
                out[name] = getattr(record, name)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message`, and ` [request_id]` when there is one."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", None) or request_id.get()
        if not rid:
            return line
        head, nl, rest = line.partition("\n")  # keep a traceback below the first line
        return f"{head} [{rid}]{nl}{rest}"


def log_config(fmt: str = "text", level: str = "INFO") -> dict[str, Any]:
    """The logging configuration of the server, for `logging.config.dictConfig` or as
    uvicorn's `log_config`. The access lines are askta's own (server/web/observability.py),
    with the request id and duration, so uvicorn's access logger is silenced."""
    formatter = "json" if fmt == "json" else "text"
    # One handler, on the root logger; the server's loggers set the level and propagate
    # to it (so tools that listen at the root, like pytest's caplog, still see them).
    ours = {"level": level, "handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"json": {"()": JsonFormatter}, "text": {"()": TextFormatter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": formatter,
                "filters": ["request_id"],
            },
        },
        "loggers": {
            "askta": ours,
            "server": ours,
            "indexer": ours,
            "uvicorn": ours,
            "uvicorn.error": ours,
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        },
        "root": {"handlers": ["default"], "level": "WARNING"},
    }


def configure(fmt: str = "text", level: str = "INFO") -> None:
    """Apply `log_config` to this process's logging."""
    logging.config.dictConfig(log_config(fmt, level))


def configured() -> bool:
    """Whether logging is set up in this process already: the root logger has handlers
    (`askta serve` and uvicorn's `log_config`, a test runner, or whoever runs the app)."""
    return bool(logging.getLogger().handlers)

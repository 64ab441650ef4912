"""One log format for Hubbub's loggers and uvicorn's, as text or JSON lines, with request ids.

``--log-format text`` (the default) writes ``<ts> <LEVEL> <logger> [<request id>] <message>``;
``--log-format json`` one JSON object per line: ``ts`` (ISO-8601, UTC), ``level``, ``logger``,
``message``, ``request_id`` while a request is handled, ``exception`` (the traceback) when there is
one, and any field a caller passed with ``extra=``. Both go to stderr through the root logger,
which uvicorn's loggers propagate to: :func:`log_config` is handed to uvicorn as its
``log_config``, so every worker process (``--workers N``) configures itself the same way.

Request ids (:data:`REQUEST_ID`): a client's ``X-Request-ID`` when it is sane (1 to 128
characters of ``A-Z a-z 0-9 . _ : + / = @ -``), else a fresh one (16 hex digits). The HTTP
protocol works it out once per request (``http_protocol.py``) and puts it in the response's
head; the app sets the context variable, so every line logged while handling that request,
uvicorn's access line included, carries it.
"""

from __future__ import annotations

import logging
import logging.config
import re
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from random import getrandbits
from typing import Any, Literal

import orjson

LogFormat = Literal["text", "json"]

REQUEST_ID: ContextVar[str | None] = ContextVar("hubbub_request_id", default=None)
"""The id of the request this task is handling (``None`` outside requests)."""

REQUEST_ID_HEADER = b"x-request-id"
SCOPE_KEY = "hubbub.request_id"
"""Where the HTTP protocol leaves the request's id in the ASGI scope."""

_SANE_ID = re.compile(rb"[A-Za-z0-9._:+/=@-]{1,128}")


def new_request_id() -> bytes:
    """16 hex digits. Not a secret, only unique enough to find one request's lines among a
    busy day's (``random`` is reseeded in each forked process)."""
    return b"%016x" % getrandbits(64)


def request_id_of(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The client's ``X-Request-ID`` (header names lower-case, as servers give them) if it is
    sane, else a new id: a hostile value (huge, newlines, quotes) is never echoed."""
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            if _SANE_ID.fullmatch(value):
                return bytes(value)
            break
    return new_request_id()


# Formatting --------------------------------------------------------------------------------

# What every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "request_id",
    "color_message",  # uvicorn's own copy of the message, with terminal colours
}


def _timestamp(record: logging.LogRecord) -> str:
    when = datetime.fromtimestamp(record.created, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def _exception_text(record: logging.LogRecord) -> str | None:
    parts = []
    if record.exc_info and record.exc_info[0] is not None:
        parts.append("".join(traceback.format_exception(*record.exc_info)).rstrip())
    elif record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(record.stack_info)
    return "\n".join(parts) if parts else None


class RequestIdFilter(logging.Filter):
    """Stamps each record with the request id of the task that logs it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        return True


class TextFormatter(logging.Formatter):
    """``2026-11-30T22:37:25.123Z INFO hubbub.api [3f9c…] message key=value``: a newline in a
    message is written ``\\n``, so one line is one record; a traceback follows on its own
    lines."""

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None) or REQUEST_ID.get()
        line = f"{_timestamp(record)} {record.levelname} {record.name}"
        if rid:
            line += f" [{rid}]"
        line += " " + record.getMessage().replace("\n", "\\n")  # a record is a line
        extras = _extras(record)
        if extras:
            line += "".join(f" {k}={v}" for k, v in extras.items())
        exc = _exception_text(record)
        if exc:
            line += "\n" + exc
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line (newlines inside values are escaped, so a line is a record)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or REQUEST_ID.get()
        if rid:
            out["request_id"] = rid
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            out.update(_access_fields(record.args))
        out.update(_extras(record))
        exc = _exception_text(record)
        if exc:
            out["exception"] = exc
        return orjson.dumps(out, default=str).decode()


def _access_fields(args: tuple[Any, ...]) -> dict[str, Any]:
    """uvicorn's access line, ``'%s - "%s %s HTTP/%s" %d'``, as fields too."""
    if len(args) != 5:
        return {}
    client, method, path, _version, status = args
    return {"client": client, "method": method, "path": path, "status": status}


# Configuration -----------------------------------------------------------------------------

_LEVELS = {"trace": 5, "debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


def log_config(log_format: str, log_level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for this process and uvicorn's (``Config.log_config``):
    one handler on the root logger; Hubbub's and uvicorn's loggers propagate to it."""
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    level = _LEVELS.get(log_level.lower(), logging.INFO)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"hubbub": {"()": formatter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "hubbub",
                "filters": ["request_id"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            name: {"handlers": [], "propagate": True, "level": level}
            for name in ("hubbub", "uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def configure(log_format: str, log_level: str) -> dict[str, Any]:
    """Configure this process's logging; returns the config for uvicorn to apply in workers."""
    logging.addLevelName(5, "TRACE")
    config = log_config(log_format, log_level)
    logging.config.dictConfig(config)
    return config

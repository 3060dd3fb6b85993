"""Logs carrying the correlation id, with phone numbers and emails masked: JSON lines (the
production default) or one readable console line per event (development)."""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

correlation_id_var: ContextVar[str | None] = ContextVar("correlation_id", default=None)

# An e-mail address, also URL-encoded (`name%40example.de`).
_EMAIL = re.compile(
    r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*?(?:@|%40)([A-Za-z0-9.-]+\.[A-Za-z]{2,})", re.IGNORECASE
)
# A phone number: optional + (or its URL encoding %2B), 7 to 15 digits, possibly grouped by
# spaces (also `%20` or `+` in a query string), dashes, dots or slashes.
_PHONE = re.compile(
    r"(?<![\w-])((?:\+|%2B)?\d(?:[\d\s./-]|%20|\+(?=\d)){5,18}\d)(?![\w-])", re.IGNORECASE
)
_ENCODED = re.compile(r"%[0-9A-Fa-f]{2}")
# SQL errors: the bound values of the failed statement (SQLAlchemy's `[parameters: ...]` line)
# and the values a driver quotes back (MariaDB's "Duplicate entry '...'").
_SQL_PARAMETERS = re.compile(r"\[parameters: [^\n]*")
_SQL_QUOTED_VALUE = re.compile(
    r"((?:Duplicate entry|Incorrect \w+ value:?|Data truncated for column \S+ at row|"
    r"Out of range value for column)\s*)'(?:[^'\\]|\\.)*'",
    re.IGNORECASE,
)
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


# Where a run of digits may be cut: before a separator (space, `%20`, `+`, `.`, `/`, `-`).
_GROUP_END = re.compile(r"(?=[\s./-]|%20|\+)")


def _masked_number(raw: str) -> str | None:
    encoded_plus = raw[:3].upper() == "%2B"
    digits = re.sub(r"\D", "", _ENCODED.sub(" ", raw[3:] if encoded_plus else raw))
    if not 7 <= len(digits) <= 15:
        return None
    plus = "+" if raw.startswith("+") or encoded_plus else ""
    return plus + "*" * (len(digits) - 2) + digits[-2:]


def _mask_phone(match: re.Match[str]) -> str:
    raw = match.group(1)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):  # an ISO date, not a number
        return raw
    masked = _masked_number(raw)
    if masked is not None:
        return masked
    # Too many digits: a number followed by more figures ("+4917612345678 200"). Mask the
    # longest leading groups that form a number and keep the rest as it was.
    for cut in reversed([m.start() for m in _GROUP_END.finditer(raw) if m.start() > 0]):
        masked = _masked_number(raw[:cut])
        if masked is not None:
            return masked + raw[cut:]
    return raw


def mask(text: str) -> str:
    """Mask emails (a***@domain) and phone numbers (all but the last two digits), plain or
    URL-encoded, and drop the values of failed SQL statements."""
    text = _SQL_PARAMETERS.sub("[parameters: hidden]", text)
    text = _SQL_QUOTED_VALUE.sub(r"\1'***'", text)
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _PHONE.sub(_mask_phone, text)


def mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_value(v) for v in value]
    return value


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str = "appointments") -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "service": self.service,
            "correlation_id": getattr(record, "correlation_id", None) or correlation_id_var.get(),
            "message": mask(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry:
                entry[key] = mask_value(value)
        if record.exc_info:
            entry["exc"] = mask(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


def _console_value(value: Any) -> str:
    """A string as is, or JSON-quoted when it holds a space, quote or `=`; anything else as JSON."""
    if not isinstance(value, str):
        return json.dumps(value, default=str, ensure_ascii=False)
    if value == "" or any(c.isspace() or c in '"=' for c in value):
        return json.dumps(value, ensure_ascii=False)  # quoted, newlines escaped
    return value


# arq's "  0.05s → cron:sweep_outbox()" and "  0.18s ← cron:sweep_outbox ● 0".
_ARQ_CRON_RUN = re.compile(r"\s*[\d.]+s [→←] cron:")
# uvicorn's ANSI-coloured copy of its message; the correlation id is printed as `cid=`.
_CONSOLE_SKIPPED = {"color_message", "correlation_id"}


class QuietCron(logging.Filter):
    """Drops arq's INFO lines about cron runs and its periodic health line: in a console they
    are most of the lines and say nothing (failures are WARNING and stay)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("arq") or record.levelno >= logging.WARNING:
            return True
        message = record.getMessage()
        return not _ARQ_CRON_RUN.match(message) and not message.startswith("recording health")


class ConsoleFormatter(logging.Formatter):
    """One readable line per event: `HH:MM:SS.mmm LEVEL service message key=value ...`
    (local time, masked like the JSON lines); a traceback follows on indented lines."""

    def __init__(self, service: str = "appointments") -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        message = mask(record.getMessage()).replace("\r", "").replace("\n", " | ")
        parts = [f"{moment}.{int(record.msecs):03d}", f"{record.levelname:<7}", self.service]
        parts.append(message)
        cid = getattr(record, "correlation_id", None) or correlation_id_var.get()
        if cid:
            parts.append(f"cid={_console_value(cid)}")
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in _CONSOLE_SKIPPED:
                parts.append(f"{key}={_console_value(mask_value(value))}")
        line = " ".join(parts)
        if record.exc_info:
            trace = mask(self.formatException(record.exc_info))
            line += "\n" + "\n".join(f"    {row}" for row in trace.splitlines())
        return line


def configure_logging(service: str, level: str = "INFO", json_logs: bool = True) -> None:
    """Route every logger (uvicorn and arq included) through one masked formatter on stdout:
    JSON lines, else (`json_logs` False, see Settings.log_format) console lines without arq's
    cron chatter."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service) if json_logs else ConsoleFormatter(service))
    if not json_logs:
        handler.addFilter(QuietCron())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "arq"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("asyncmy").setLevel(logging.ERROR)

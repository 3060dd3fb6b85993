"""The console log format of development (`make run`): one masked line per event, and which
settings choose it."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from datetime import datetime

import pytest

from shared.config import Settings
from shared.observability.logging import (
    ConsoleFormatter,
    QuietCron,
    configure_logging,
    correlation_id_var,
)
from tools.children import SERVICES, child_commands


def _record(
    msg: str, *args: object, name: str = "booking", level: int = logging.INFO, **extra: object
) -> logging.LogRecord:
    record = logging.makeLogRecord(
        {
            "name": name,
            "levelname": logging.getLevelName(level),
            "levelno": level,
            "msg": msg,
            "args": args,
            **extra,
        }
    )
    record.created = datetime(2026, 12, 7, 18, 30, 5, 123000).timestamp()
    record.msecs = 123.0
    return record


def test_console_line_has_time_level_service_message_and_masked_extras() -> None:
    record = _record(
        "customer %s booked\nat 14:30",
        "+491701234567",
        customer={"email": "max@example.com", "phone": "+4930123456"},
        appointment_id="a-1",
        note="two words",
    )
    token = correlation_id_var.set("call_abc123")
    try:
        line = ConsoleFormatter("booking").format(record)
    finally:
        correlation_id_var.reset(token)
    assert "\n" not in line
    assert line == (
        "18:30:05.123 INFO    booking customer +**********67 booked | at 14:30 cid=call_abc123"
        ' customer={"email": "m***@example.com", "phone": "+********56"}'
        ' appointment_id=a-1 note="two words"'
    )


def test_console_line_masks_an_email_in_a_plain_extra_and_skips_uvicorn_colours() -> None:
    record = _record(
        "Uvicorn running", color_message="\x1b[1mUvicorn\x1b[0m", to="anna.schmidt@example.de"
    )
    line = ConsoleFormatter("policy").format(record)
    assert line == "18:30:05.123 INFO    policy Uvicorn running to=a***@example.de"


def test_console_traceback_follows_indented_and_masked() -> None:
    try:
        raise ValueError("no slot for +491701234567")
    except ValueError:
        record = _record("booking failed", level=logging.ERROR, exc_info=sys.exc_info())
    first, *rest = ConsoleFormatter("booking").format(record).splitlines()
    assert first == "18:30:05.123 ERROR   booking booking failed"
    assert rest and all(row.startswith("    ") for row in rest)
    assert rest[-1] == "    ValueError: no slot for +**********67"


def test_quiet_cron_drops_arq_cron_runs_and_health_but_keeps_the_rest() -> None:
    quiet = QuietCron()
    dropped = [
        _record("%6.2fs → %s()%s", 0.05, "cron:sweep_outbox", "", name="arq.worker"),
        _record("%6.2fs ← %s ● %s", 0.18, "cron:sweep_outbox", 0, name="arq.worker"),
        _record("recording health: Dec-07 j_complete=1", name="arq.worker"),
    ]
    kept = [
        _record("starting worker for 3 functions: ping, notify, cron:x", name="arq.worker"),
        _record("%6.2fs → %s()", 0.1, "notify", name="arq.worker"),
        _record("%6.2fs ! cron:sweep_outbox failed", 0.1, name="arq.worker", level=30),
        _record("  0.05s → cron:sweep_outbox()", name="booking"),
    ]
    assert [quiet.filter(r) for r in dropped] == [False, False, False]
    assert [quiet.filter(r) for r in kept] == [True, True, True, True]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_configure_logging_console_prints_one_line_per_event_without_cron_chatter(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    configure_logging("booking", "INFO", json_logs=False)
    logging.getLogger("tests.console").info("hello %s", "a@b.de", extra={"k": 1})
    logging.getLogger("arq.worker").info("  0.01s ← cron:sweep_outbox ● 0")
    logging.getLogger("arq.worker").info("  0.02s → notify(n-1)")
    lines = out.getvalue().splitlines()
    assert [line[13:] for line in lines] == [
        "INFO    booking hello a***@b.de k=1",
        "INFO    booking   0.02s → notify(n-1)",
    ]


def test_make_run_children_drop_access_and_uvicorn_lines_with_console_logs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("APP_ENV", "ENVIRONMENT", "LOG_FORMAT", "LOG_JSON"):
        monkeypatch.delenv(name, raising=False)
    quiet = child_commands(Settings(_env_file=None))
    loud = child_commands(Settings(_env_file=None, log_format="json"))
    for name, _factory in SERVICES:
        assert quiet[name][-3:] == ["--no-access-log", "--log-level", "warning"]
        assert "--no-access-log" not in loud[name] and "--log-level" not in loud[name]


@pytest.mark.parametrize(
    ("given", "json_logs"),
    [
        ({}, False),  # development is the default environment
        ({"environment": "development"}, False),
        ({"environment": "test"}, True),
        ({"environment": "staging"}, True),
        ({"environment": "production", "secret_key": "s3cret"}, True),
        ({"environment": "production", "secret_key": "s3cret", "log_format": "console"}, False),
        ({"environment": "development", "log_format": "json"}, True),
        ({"environment": "development", "log_json": True}, True),
        ({"environment": "staging", "log_json": False}, False),
        ({"log_format": "console", "log_json": True}, False),
    ],
)
def test_log_format_setting(
    given: dict[str, object], json_logs: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("APP_ENV", "ENVIRONMENT", "LOG_FORMAT", "LOG_JSON"):
        monkeypatch.delenv(name, raising=False)
    assert Settings(**given).log_json is json_logs  # type: ignore[arg-type]


def test_log_format_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "staging")
    monkeypatch.setenv("LOG_FORMAT", "console")
    assert Settings().log_json is False
    monkeypatch.setenv("APP_ENV", "development")
    monkeypatch.delenv("LOG_FORMAT")
    assert Settings().log_json is False
    monkeypatch.setenv("LOG_JSON", "true")
    assert Settings().log_json is True
    monkeypatch.setenv("LOG_FORMAT", "bogus")
    with pytest.raises(ValueError, match="log_format"):
        Settings()

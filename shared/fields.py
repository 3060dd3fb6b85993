"""Reusable validated field types of the admin API (pure: no I/O)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import lru_cache
from typing import Annotated
from urllib.parse import urlsplit
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    PlainSerializer,
    StringConstraints,
)

from shared.phones import normalize_phone

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CENT = Decimal("0.01")
# Columns are INT on MariaDB (strict mode refuses larger values) and minutes/days beyond a
# few years are mistakes, not settings.
MAX_MINUTES = 366 * 24 * 60
MAX_INT32 = 2**31 - 1


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _timezone(name: str) -> str:
    # Membership, not ZoneInfo(name): ZoneInfo reads files, so on a case-insensitive
    # filesystem it would accept "europe/berlin", which other systems reject.
    if name not in _zones():
        raise ValueError(f"'{name}' is not an IANA time zone name (e.g. Europe/Berlin)")
    return name


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError(f"'{value}' is not an e-mail address")
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() for c in value)
    ):
        raise ValueError("must be an http(s) URL such as https://api.cal.com")
    return value.rstrip("/")


def _money(value: Decimal) -> Decimal:
    return (value + 0).quantize(_CENT)  # + 0 turns -0 into 0


def _time_of_day(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("a time of day has no offset; use branch-local HH:MM")
    if value.second or value.microsecond:
        raise ValueError("times of day are whole minutes (HH:MM)")
    return value


def check_day(value: date) -> date:
    """A calendar day whose local hours still convert to UTC and back (years 1900-9998)."""
    if not 1900 <= value.year <= 9998:
        raise ValueError("date out of range (years 1900-9998)")
    return value


_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso_text(value: object) -> object:
    # pydantic would also read numbers and digit strings as Unix timestamps: refuse them.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATETIME.match(value):
        raise ValueError(
            "must be an ISO 8601 date-time with offset, e.g. 2026-03-30T10:00:00+02:00"
        )
    return value


def _instant(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("instant out of range") from exc
    if not 1900 <= utc.year <= 9998:
        raise ValueError("instant out of range (years 1900-9998)")
    return utc


def _cents(value: Decimal) -> str:
    return f"{value:.2f}"


def _hhmm(value: time) -> str:
    return value.strftime("%H:%M")


WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WEEKDAYS = {n: i for i, n in enumerate(WEEKDAY_NAMES)} | {
    n[:3]: i for i, n in enumerate(WEEKDAY_NAMES)
}


def _weekday(value: object) -> object:
    """An English weekday name ("monday" or "mon", any case) as 0-6; other values pass on to
    the 0-6 integer check."""
    if isinstance(value, str) and not value.strip().lstrip("+-").isdigit():
        number = _WEEKDAYS.get(value.strip().lower())
        if number is None:
            accepted = ", ".join(WEEKDAY_NAMES)
            raise ValueError(
                f"must be 0-6 (0 = Monday) or a weekday name: {accepted} (or mon..sun)"
            )
        return number
    return value


def _iso(value: datetime) -> str:
    return value.isoformat()


def _text(max_length: int) -> StringConstraints:
    return StringConstraints(strip_whitespace=True, max_length=max_length)


def mask(secret: str | None) -> str | None:
    """`****` plus the last four characters (enough to recognise a key, not to use it)."""
    if not secret:
        return None
    return "****" + secret[-4:] if len(secret) >= 12 else "****"


# Input types ---------------------------------------------------------------------------

Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=36)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Text20 = Annotated[str, _text(20)]
Text100 = Annotated[str, _text(100)]
Text255 = Annotated[str, _text(255)]
LongText = Annotated[str, _text(5000)]
Timezone = Annotated[str, StringConstraints(max_length=64), AfterValidator(_timezone)]
Phone = Annotated[str, StringConstraints(max_length=50), AfterValidator(normalize_phone)]
Email = Annotated[str, _text(255), AfterValidator(_email)]
HttpBaseUrl = Annotated[str, _text(255), AfterValidator(_http_url)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
Money = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2), AfterValidator(_money)]
Minutes = Annotated[int, Field(ge=0, le=MAX_MINUTES)]
PositiveMinutes = Annotated[int, Field(ge=1, le=MAX_MINUTES)]
TimeOfDay = Annotated[time, AfterValidator(_time_of_day)]
Instant = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_instant)]
Day = Annotated[date, AfterValidator(check_day)]
# 0 = Monday .. 6 = Sunday; English names ("monday", "mon", any case) are accepted too.
Weekday = Annotated[int, BeforeValidator(_weekday), Field(ge=0, le=6)]

# Output types: JSON shapes of the contract ---------------------------------------------

MoneyOut = Annotated[Decimal, PlainSerializer(_cents, return_type=str, when_used="json")]
TimeOut = Annotated[time, PlainSerializer(_hhmm, return_type=str, when_used="json")]
InstantOut = Annotated[datetime, PlainSerializer(_iso, return_type=str, when_used="json")]


def utc_instant(value: object) -> datetime:
    """An ISO 8601 instant with an offset (`Z` allowed, as Cal.com writes it) as UTC-aware
    datetime; ValueError naming what is wrong otherwise (not text, not ISO, no offset)."""
    if not isinstance(value, str):
        raise ValueError("is not a string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("is not an ISO 8601 instant") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError("has no UTC offset")
    return parsed.astimezone(UTC)

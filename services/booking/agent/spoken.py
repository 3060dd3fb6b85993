"""Dates, times, money and lists as the phone agent says them in German (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from typing import Final, TypeAlias

from shared.local_time import to_local

WEEKDAYS: Final = (
    "Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag",
)  # fmt: skip
MONTHS: Final = (
    "Januar", "Februar", "März", "April", "Mai", "Juni",
    "Juli", "August", "September", "Oktober", "November", "Dezember",
)  # fmt: skip
CURRENCY_NAMES: Final[Mapping[str, str]] = {"EUR": "Euro", "CHF": "Franken"}
_COUNT_WORDS: Final = (
    "null", "einen", "zwei", "drei", "vier", "fünf", "sechs",
    "sieben", "acht", "neun", "zehn", "elf", "zwölf",
)  # fmt: skip

TzLike: TypeAlias = str | tzinfo


def wall_clock(instant: datetime, tz: TzLike) -> datetime:
    """The instant in the zone's wall-clock time; a naive instant is taken as UTC (that is
    how the database hands them back)."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return to_local(instant, tz)


def spoken_date(d: date, with_year: bool = False) -> str:
    """'Dienstag, 24. November' (with_year: 'Dienstag, 24. November 2026')."""
    text = f"{WEEKDAYS[d.weekday()]}, {d.day}. {MONTHS[d.month - 1]}"
    return f"{text} {d.year}" if with_year else text


def spoken_time(t: time) -> str:
    """'14:30 Uhr', 24-hour clock."""
    return f"{t.hour:02d}:{t.minute:02d} Uhr"


def spoken_datetime(instant_utc: datetime, tz_name: TzLike, with_year: bool = False) -> str:
    """'Dienstag, 24. November um 14:30 Uhr' in the zone's wall-clock time."""
    local = wall_clock(instant_utc, tz_name)
    return f"{spoken_date(local.date(), with_year)} um {spoken_time(local.time())}"


def spoken_money(amount: Decimal | int, currency: str) -> str:
    """'1.234,50 Euro': German separators, two decimals (half up), the currency spelled out."""
    quantized = Decimal(amount).quantize(Decimal("0.01"), ROUND_HALF_UP)
    digits = f"{quantized:,.2f}".replace(",", "\0").replace(".", ",").replace("\0", ".")
    code = currency.strip().upper()
    return f"{digits} {CURRENCY_NAMES.get(code, code)}"


def spoken_list(items: Sequence[str], conjunction: str = "oder") -> str:
    """'A', 'A oder B', 'A, B oder C'."""
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def spoken_count(n: int) -> str:
    """'einen', 'zwei' ... 'zwölf', then digits."""
    return _COUNT_WORDS[n] if n < len(_COUNT_WORDS) else str(n)

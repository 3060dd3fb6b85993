"""Language-aware formatting of instants and money for notifications (German and English).

Hand-rolled on purpose: two languages do not justify Babel, and the system locale of a
container must not decide how a customer's appointment reads. Instants are stored UTC and
turned into the branch's local time only here, at the edge.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

from shared.local_time import to_local, zone_of

LANGUAGES: Final = ("de", "en")
DEFAULT_LANGUAGE: Final = "de"

_WEEKDAYS: Final = {
    "de": ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_MONTHS: Final = {
    "de": (
        "Januar",
        "Februar",
        "März",
        "April",
        "Mai",
        "Juni",
        "Juli",
        "August",
        "September",
        "Oktober",
        "November",
        "Dezember",
    ),
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}
_SYMBOLS: Final = {"EUR": "€"}
_CENT: Final = Decimal("0.01")


def normalize_language(language: str | None) -> str:
    """`language` if we have texts for it, else the default (German)."""
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


def _local(instant: datetime, timezone: str) -> datetime:
    """The aware `instant` in the zone `timezone` (ValueError for a naive one)."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("the instant must be timezone-aware (UTC)")
    try:
        zone = zone_of(timezone)
    except ValueError as exc:
        raise ValueError(f"'{timezone}' is not an IANA time zone name") from exc
    return to_local(instant, zone)


def format_instant(instant: datetime, timezone: str, language: str) -> str:
    """The long form: "Dienstag, 24. November 2026 um 14:30 Uhr" (de) or
    "Tuesday, 24 November 2026 at 14:30" (en)."""
    local = _local(instant, timezone)
    language = normalize_language(language)
    weekday = _WEEKDAYS[language][local.weekday()]
    month = _MONTHS[language][local.month - 1]
    clock = f"{local.hour:02d}:{local.minute:02d}"
    if language == "de":
        return f"{weekday}, {local.day}. {month} {local.year} um {clock} Uhr"
    return f"{weekday}, {local.day} {month} {local.year} at {clock}"


def format_date(instant: datetime, timezone: str, language: str) -> str:
    """The local date: "24.11.2026" / "24 November 2026"."""
    local = _local(instant, timezone)
    if normalize_language(language) == "de":
        return f"{local.day:02d}.{local.month:02d}.{local.year}"
    return f"{local.day} {_MONTHS['en'][local.month - 1]} {local.year}"


def format_time(instant: datetime, timezone: str, language: str) -> str:
    """The local wall-clock time, 24-hour: "14:30" in both languages."""
    local = _local(instant, timezone)
    return f"{local.hour:02d}:{local.minute:02d}"


def format_money(amount: Decimal, currency: str, language: str) -> str:
    """de "1.234,50 €" / en "€1,234.50"; without a symbol the code: "12,50 CHF" / "CHF 12.50"."""
    value = Decimal(amount).quantize(_CENT, rounding=ROUND_HALF_UP)
    sign = "-" if value < 0 else ""
    grouped = f"{abs(value):,.2f}"  # "1,234.50"
    currency = currency.upper()
    symbol = _SYMBOLS.get(currency)
    if normalize_language(language) == "de":
        number = grouped.replace(",", "\0").replace(".", ",").replace("\0", ".")
        return f"{sign}{number} {symbol or currency}"
    if symbol is not None:
        return f"{sign}{symbol}{grouped}"
    return f"{sign}{currency} {grouped}"

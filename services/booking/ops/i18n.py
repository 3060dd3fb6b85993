"""The ops page's language choice and its formats of dates, days and amounts (pure): one
`Formatter` per page view. Every label of the page comes from `LABELS` (the tables are in
`i18n_texts`; both languages have the same keys)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal

from services.booking.ops.causes import CAUSES
from services.booking.ops.i18n_texts import LABELS
from shared.local_time import zone_of

__all__ = ["CAUSE_KEYS", "LABELS", "LANGUAGES", "Formatter", "choose_language"]

LANGUAGES = ("de", "en")

CAUSE_KEYS = tuple(f"{kind}.{key}" for key in CAUSES for kind in ("cause", "fix"))

_WEEKDAYS = {
    "de": ("Mo", "Di", "Mi", "Do", "Fr", "Sa", "So"),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _accepted(header: str) -> list[tuple[float, int, str]]:
    ranked = []
    for position, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        language = tag.strip().lower().split("-")[0]
        if language in LANGUAGES and quality > 0:
            ranked.append((-quality, position, language))
    return sorted(ranked)


def choose_language(
    requested: str | None, accept_language: str | None, timezone: str | None = None
) -> str:
    """`?lang=` when it names a language of the page, else the browser's preferred one of
    them (Accept-Language), else German for a company in a European zone, else English."""
    if requested in LANGUAGES:
        return requested
    ranked = _accepted(accept_language or "")
    if ranked:
        return ranked[0][2]
    return "de" if (timezone or "").startswith("Europe/") else "en"


@dataclass(frozen=True)
class Formatter:
    """Labels, instants, days and amounts of one page view: one language, one zone."""

    lang: str
    zone: tzinfo

    def t(self, key: str, **values: object) -> str:
        text = LABELS[self.lang][key]
        return text.format(**values) if values else text

    def local(self, instant: datetime, zone: tzinfo | str | None = None) -> datetime:
        if instant.tzinfo is None:  # SQLite hands back naive UTC
            instant = instant.replace(tzinfo=UTC)
        return instant.astimezone(self.zone if zone is None else zone_of(zone))

    def when(self, instant: datetime | str | None, zone: tzinfo | str | None = None) -> str:
        """Weekday, date and time: "Mo, 07.12.2026, 14:30" / "Mon, 07 Dec 2026, 14:30"."""
        if instant is None:
            return "\u2013"
        value = self.local(_instant(instant), zone)
        weekday = _WEEKDAYS[self.lang][value.weekday()]
        if self.lang == "de":
            return f"{weekday}, {value:%d.%m.%Y}, {value:%H:%M}"
        month = _MONTHS_EN[value.month - 1]
        return f"{weekday}, {value:%d} {month} {value:%Y}, {value:%H:%M}"

    def time(self, instant: datetime | str | None, zone: tzinfo | str | None = None) -> str:
        if instant is None:
            return "\u2013"
        return f"{self.local(_instant(instant), zone):%H:%M}"

    def stamp(self, instant: datetime | str | None) -> str:
        """Time to the second, for a timeline's steps."""
        if instant is None:
            return "\u2013"
        return f"{self.local(_instant(instant)):%H:%M:%S}"

    def day(self, day: date) -> str:
        """A day as a chart's axis shows it: "Nov 3" / "3.11."."""
        if self.lang == "de":
            return f"{day.day}.{day.month}."
        return f"{_MONTHS_EN[day.month - 1]} {day.day}"

    def amount(self, value: Decimal) -> str:
        """Two decimals with the language's separators: "1,234.50" / "1.234,50"."""
        text = f"{value:,.2f}"
        if self.lang == "de":
            text = text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")
        return text

    def money(self, value: Decimal, currency: str) -> str:
        """An amount and its currency: "1,234.50 EUR" / "1.234,50 EUR"."""
        return f"{self.amount(value)} {currency}"


def _instant(value: datetime | str) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value

"""What the owners' charts say, in English and German, and the four charts of a `Trends`:
bookings vs cancellations, agent calls vs callbacks, no-shows and fees, per local day.

The page includes `ops/_charts.html` with the context of `chart_context(trends, language)`.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from services.booking.ops.charts import Chart, Series, bar_chart, data_table, plain
from services.booking.ops.trends import Trends

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "bookings": "Bookings",
        "cancellations": "Cancellations",
        "agent_calls": "Calls (agent)",
        "callbacks": "Callbacks",
        "no_shows": "No-shows",
        "fees": "Fees",
        "per_day_30": "Per day, last 30 days",
        "bookings_title": "Bookings and cancellations",
        "calls_title": "Calls handled by the agent and callbacks requested",
        "no_shows_title": "No-shows",
        "fees_title": "Fees charged",
        "day": "Day",
        "no_data": "No data",
        "other_fees": "Fees in other currencies (not in the chart)",
    },
    "de": {
        "bookings": "Buchungen",
        "cancellations": "Stornierungen",
        "agent_calls": "Anrufe (Agent)",
        "callbacks": "R\u00fcckrufe",
        "no_shows": "Nicht erschienen",
        "fees": "Geb\u00fchren",
        "per_day_30": "Pro Tag, letzte 30 Tage",
        "bookings_title": "Buchungen und Stornierungen",
        "calls_title": "Vom Agenten angenommene Anrufe und R\u00fcckrufw\u00fcnsche",
        "no_shows_title": "Nicht erschienen",
        "fees_title": "Berechnete Geb\u00fchren",
        "day": "Tag",
        "no_data": "Keine Daten",
        "other_fees": "Geb\u00fchren in anderen W\u00e4hrungen (nicht im Diagramm)",
    },
}
MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def language_of(language: str | None) -> str:
    """ "de", "de-DE" or "de_AT" -> "de"; anything else -> "en"."""
    return "de" if (language or "").lower()[:2] == "de" else "en"


def labels_for(language: str | None) -> dict[str, str]:
    return LABELS[language_of(language)]


def day_label(day: date, language: str | None) -> str:
    """A day as an axis shows it: "Nov 3" or "3.11."."""
    if language_of(language) == "de":
        return f"{day.day}.{day.month}."
    return f"{MONTHS_EN[day.month - 1]} {day.day}"


def money(value: Decimal, currency: str, language: str | None) -> str:
    """Two decimals with the language's separators: "1,234.50 EUR" / "1.234,50 EUR"."""
    return f"{amount(value, language)} {currency}"


def amount(value: Decimal, language: str | None) -> str:
    text = f"{value:,.2f}"
    if language_of(language) == "de":
        text = text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")
    return text


def charts_for(trends: Trends, language: str | None) -> list[Chart]:
    """The four charts of the ops page, titled and labelled in `language`."""
    text = labels_for(language)
    days = [day_label(d, language) for d in trends.labels]

    def chart(name: str, title: str, series: list[Series], **options: Any) -> Chart:
        fmt = options.pop("value_format", plain)
        svg = bar_chart(
            title,
            days,
            series,
            value_format=fmt,
            no_data=text["no_data"],
            chart_id=f"ops-chart-{name}",
            **options,
        )
        table = data_table(title, days, series, label_header=text["day"], value_format=fmt)
        return Chart(title, svg, table)

    def per_day(key: str) -> Series:
        return Series(text[key], trends.series(key), "bar-" + key.replace("_", "-"))

    currency = trends.currency
    return [
        chart("bookings", text["bookings_title"], [per_day("bookings"), per_day("cancellations")]),
        chart("calls", text["calls_title"], [per_day("agent_calls"), per_day("callbacks")]),
        chart("no-shows", text["no_shows_title"], [per_day("no_shows")]),
        chart(
            "fees",
            f"{text['fees_title']} ({currency})",
            [per_day("fees")],
            value_format=lambda v: money(v, currency, language),
            tick_format=lambda v: amount(v, language),
            integer=False,
        ),
    ]


def chart_context(trends: Trends, language: str | None) -> dict[str, Any]:
    """What `ops/_charts.html` expects: the trends, the labels and the rendered charts."""
    return {
        "trends": trends,
        "labels": labels_for(language),
        "charts": charts_for(trends, language),
        "chart_money": lambda value, currency: money(value, currency, language),
    }

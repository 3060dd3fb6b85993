"""The four charts of a `Trends` on the owners' page: bookings vs cancellations, agent calls
vs callbacks, no-shows and fees, per local day, worded and formatted by the page's
`i18n.Formatter` (its `charts.*` labels, `day`, `amount` and `money`).

The page includes `ops/_charts.html` with the context of `chart_context(trends, fmt)` besides
its `t` and `fmt`.
"""

from __future__ import annotations

from typing import Any

from services.booking.ops.charts import Chart, Series, bar_chart, data_table, plain
from services.booking.ops.i18n import Formatter
from services.booking.ops.trends import Trends


def charts_for(trends: Trends, fmt: Formatter) -> list[Chart]:
    """The four charts of the ops page, titled and labelled in `fmt`'s language."""
    days = [fmt.day(d) for d in trends.labels]

    def chart(name: str, title: str, series: list[Series], **options: Any) -> Chart:
        value_format = options.pop("value_format", plain)
        svg = bar_chart(
            title,
            days,
            series,
            value_format=value_format,
            no_data=fmt.t("charts.no_data"),
            chart_id=f"ops-chart-{name}",
            **options,
        )
        table = data_table(
            title, days, series, label_header=fmt.t("charts.day"), value_format=value_format
        )
        return Chart(title, svg, table)

    def per_day(key: str) -> Series:
        return Series(fmt.t(f"charts.{key}"), trends.series(key), "bar-" + key.replace("_", "-"))

    currency = trends.currency
    return [
        chart(
            "bookings",
            fmt.t("charts.bookings_title"),
            [per_day("bookings"), per_day("cancellations")],
        ),
        chart("calls", fmt.t("charts.calls_title"), [per_day("agent_calls"), per_day("callbacks")]),
        chart("no-shows", fmt.t("charts.no_shows_title"), [per_day("no_shows")]),
        chart(
            "fees",
            f"{fmt.t('charts.fees_title')} ({currency})",
            [per_day("fees")],
            value_format=lambda v: fmt.money(v, currency),
            tick_format=fmt.amount,
            integer=False,
        ),
    ]


def chart_context(trends: Trends, fmt: Formatter) -> dict[str, Any]:
    """What `ops/_charts.html` expects besides the page's `t` and `fmt`: the trends and the
    rendered charts."""
    return {"trends": trends, "charts": charts_for(trends, fmt)}

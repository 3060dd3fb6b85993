"""Bar charts as inline SVG for the owners' ops page (pure: a function of its arguments).

No JavaScript, fonts or style sheets of their own: the bars carry the CSS classes the page's
partial (`templates/ops/_charts.html`) colours. Each chart is `role="img"`, named by its
`<title>` and described by its `<desc>` (the series' totals); the figures themselves go to a
data table beside it (`data_table`), visually hidden, for screen readers. Every text is
escaped. All-zero data draws the axis and a "no data" text, and never divides by zero.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import NamedTuple

from markupsafe import Markup

Number = int | Decimal
Format = Callable[[Decimal], str]

STEPS = (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10))
LABEL_EVERY = (1, 2, 5, 7, 10, 14, 15, 30, 60, 90, 180, 365)
CHAR_PX = 7  # a generous average glyph width at the tick font size (11px)
X_LABEL_PX = 60  # room one x label needs, gap included
RIGHT, BOTTOM, TITLE_H, LEGEND_H = 20, 24, 22, 24
GROUP_SHARE = 0.8  # of a day's slot the bars fill; the rest is the gap between days


class Series(NamedTuple):
    name: str
    values: Sequence[Number]
    css_class: str


class _Bars(NamedTuple):
    """A series with its values checked and made Decimal."""

    name: str
    values: list[Decimal]
    css_class: str


@dataclass(frozen=True)
class Chart:
    """One chart: the SVG and its data table, rendered together by `{{ chart }}`."""

    title: str
    svg: Markup
    table: Markup

    def __html__(self) -> str:
        return Markup('<figure class="ops-chart">{}{}</figure>').format(self.svg, self.table)


def plain(value: Decimal) -> str:
    """A number as written by hand: 8, 0.25, 1250 (no exponent, no trailing zeros)."""
    text = f"{value.normalize():f}"
    return "0" if text in ("-0", "") else text


def nice_ticks(maximum: Decimal, *, count: int = 4, integer: bool = True) -> list[Decimal]:
    """0 and round steps (1, 2, 2.5 or 5 times a power of ten) up to the first tick at or
    above `maximum`, about `count` intervals; whole steps only when `integer`."""
    if maximum <= 0:
        return [Decimal(0)]
    raw = maximum / count
    magnitude = Decimal(1).scaleb(raw.adjusted())
    candidates = [step * magnitude for step in STEPS]
    if integer:
        candidates = [c for c in candidates if c >= 1 and c == c.to_integral_value()]
    step = next((c for c in candidates if c >= raw), candidates[-1] if candidates else Decimal(1))
    intervals = int((maximum / step).to_integral_value(rounding=ROUND_CEILING))
    return [step * n for n in range(intervals + 1)]


def label_every(count: int, plot_width: float) -> int:
    """Show every n-th x label so that the labels fit (30 days in a normal chart: every 5th)."""
    fits = max(1, int(plot_width // X_LABEL_PX))
    return next((n for n in LABEL_EVERY if -(-count // n) <= fits), LABEL_EVERY[-1])


def _decimal(value: Number) -> Decimal:
    number = Decimal(value)
    if not number.is_finite():
        raise ValueError("chart values must be finite numbers")
    return number


def _f(value: float) -> str:
    return f"{value:.1f}"


def _chart_id(title: str, labels: Sequence[str], series: Sequence[Series]) -> str:
    key = "\x1f".join([title, *labels, *(s.name for s in series)])
    return "chart-" + hashlib.sha256(key.encode()).hexdigest()[:10]


def _describe(labels: Sequence[str], series: Sequence[_Bars], fmt: Format) -> str:
    span = f"{labels[0]} \u2013 {labels[-1]}: " if labels else ""
    totals = "; ".join(f"{s.name} {fmt(sum(s.values, Decimal(0)))}" for s in series)
    return span + totals


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    width: int = 640,
    height: int = 240,
    value_format: Format = plain,
    tick_format: Format | None = None,
    stacked: bool = False,
    integer: bool = True,
    desc: str | None = None,
    no_data: str = "No data",
    chart_id: str | None = None,
) -> Markup:
    """Grouped (or stacked) bars, one group per label, with a y axis of round ticks, every
    n-th x label, a legend, `<title>` and `<desc>`. `series` are (name, values, css_class),
    one value per label; values below zero draw no bar."""
    if any(len(s.values) != len(labels) for s in series):
        raise ValueError("every series needs one value per label")
    ident = chart_id or _chart_id(title, labels, series)
    bars = [_Bars(s.name, [_decimal(v) for v in s.values], s.css_class) for s in series]
    tick_text = tick_format or value_format
    heights = [
        sum((max(b.values[i], Decimal(0)) for b in bars), Decimal(0))
        if stacked
        else max((max(b.values[i], Decimal(0)) for b in bars), default=Decimal(0))
        for i in range(len(labels))
    ]
    peak = max(heights, default=Decimal(0))
    ticks = nice_ticks(peak, integer=integer)
    top = ticks[-1] if ticks[-1] > 0 else Decimal(1)
    left = max(28, max(len(tick_text(t)) for t in ticks) * CHAR_PX + 10)
    plot_top = TITLE_H + (LEGEND_H if series else 0) + 6
    plot_h = max(1.0, float(height - plot_top - BOTTOM))
    plot_w = max(1.0, float(width - left - RIGHT))
    base = plot_top + plot_h

    def y(value: Decimal) -> float:
        return base - float(value / top) * plot_h

    parts = [
        Markup(
            '<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
            'viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
            'aria-labelledby="{i}-title {i}-desc" preserveAspectRatio="xMinYMin meet">'
        ).format(w=width, h=height, i=ident),
        Markup('<title id="{}-title">{}</title>').format(ident, title),
        Markup('<desc id="{}-desc">{}</desc>').format(
            ident, desc if desc is not None else _describe(labels, bars, value_format)
        ),
        Markup('<text class="chart-title" x="0" y="15">{}</text>').format(title),
    ]
    parts += _legend(bars, TITLE_H + 14)
    for tick in ticks:
        ty = _f(y(tick))
        parts.append(
            Markup('<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"/>').format(
                left, _f(left + plot_w), ty, ty
            )
        )
        parts.append(
            Markup(
                '<text class="tick" x="{}" y="{}" text-anchor="end" dy="0.32em">{}</text>'
            ).format(left - 6, ty, tick_text(tick))
        )
    parts.append(
        Markup('<line class="axis" x1="{}" x2="{}" y1="{}" y2="{}"/>').format(
            left, _f(left + plot_w), _f(base), _f(base)
        )
    )
    if peak > 0:
        parts += _rects(labels, bars, stacked, left, plot_w, y, value_format)
    else:
        parts.append(
            Markup('<text class="no-data" x="{}" y="{}" text-anchor="middle">{}</text>').format(
                _f(left + plot_w / 2), _f(plot_top + plot_h / 2), no_data
            )
        )
    parts += _x_labels(labels, left, plot_w, base)
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def _legend(series: Sequence[_Bars], baseline: int) -> list[Markup]:
    parts, x = [], 0
    for s in series:
        parts.append(
            Markup('<circle class="{}" cx="{}" cy="{}" r="5"/>').format(
                s.css_class, x + 5, baseline - 4
            )
        )
        parts.append(
            Markup('<text class="legend-label" x="{}" y="{}">{}</text>').format(
                x + 14, baseline, s.name
            )
        )
        x += 14 + len(s.name) * CHAR_PX + 16
    return parts


def _rects(
    labels: Sequence[str],
    series: Sequence[_Bars],
    stacked: bool,
    left: int,
    plot_w: float,
    y: Callable[[Decimal], float],
    fmt: Format,
) -> list[Markup]:
    """One `<rect>` per value above zero, each with a `<title>` (a tooltip on hover)."""
    slot = plot_w / len(labels)
    group = slot * GROUP_SHARE
    bar_w = group if stacked else group / len(series)
    parts = []
    for i, label in enumerate(labels):
        x0 = left + i * slot + (slot - group) / 2
        below = Decimal(0)
        for j, s in enumerate(series):
            value = s.values[i]
            if value <= 0:
                continue
            x = x0 if stacked else x0 + j * bar_w
            low, high = (below, below + value) if stacked else (Decimal(0), value)
            below = high if stacked else below
            parts.append(
                Markup(
                    '<rect class="{}" x="{}" y="{}" width="{}" height="{}">'
                    "<title>{}: {} {}</title></rect>"
                ).format(
                    s.css_class,
                    _f(x),
                    _f(y(high)),
                    _f(max(bar_w - 1, 1)),
                    _f(max(y(low) - y(high), 0.5)),
                    label,
                    s.name,
                    fmt(value),
                )
            )
    return parts


def _x_labels(labels: Sequence[str], left: int, plot_w: float, base: float) -> list[Markup]:
    if not labels:
        return []
    slot = plot_w / len(labels)
    every = label_every(len(labels), plot_w)
    last = len(labels) - 1
    return [
        Markup('<text class="x-label" x="{}" y="{}" text-anchor="middle">{}</text>').format(
            _f(left + i * slot + slot / 2), _f(base + 16), label
        )
        for i, label in enumerate(labels)
        if (last - i) % every == 0  # counted back from the last day: today is labelled
    ]


def data_table(
    caption: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    label_header: str,
    value_format: Format = plain,
    css_class: str = "visually-hidden",
) -> Markup:
    """The chart's figures as a table: one row per label, one column per series."""
    head = Markup("").join(Markup('<th scope="col">{}</th>').format(s.name) for s in series)
    rows = Markup("").join(
        Markup('<tr><th scope="row">{}</th>{}</tr>').format(
            label,
            Markup("").join(
                Markup("<td>{}</td>").format(value_format(_decimal(s.values[i]))) for s in series
            ),
        )
        for i, label in enumerate(labels)
    )
    return Markup(
        '<table class="{}"><caption>{}</caption><thead><tr><th scope="col">{}</th>{}</tr>'
        "</thead><tbody>{}</tbody></table>"
    ).format(css_class, caption, label_header, head, rows)

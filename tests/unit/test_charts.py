"""The ops page's SVG charts (services/booking/ops/charts.py, chart_labels.py and the partial
templates/ops/_charts.html): valid XML, accessible names, round ticks, one bar per value,
escaping, empty data, German labels (the formats of i18n.Formatter)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from services.booking.ops.chart_labels import chart_context, charts_for
from services.booking.ops.charts import (
    Series,
    bar_chart,
    data_table,
    label_every,
    nice_ticks,
    plain,
)
from services.booking.ops.i18n import Formatter
from services.booking.ops.trends import DayTrend, Trends

SVG = "{http://www.w3.org/2000/svg}"
DE, EN = Formatter("de", UTC), Formatter("en", UTC)
TEMPLATES = Path(__file__).resolve().parents[2] / "services" / "booking" / "templates"
DAYS = [f"d{n}" for n in range(1, 8)]


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def texts(root: ET.Element, css_class: str) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text") if t.get("class") == css_class]


def rects(root: ET.Element) -> list[ET.Element]:
    return list(root.iter(f"{SVG}rect"))


@pytest.mark.parametrize(
    ("maximum", "integer", "expected"),
    [
        ("7", True, "0 2 4 6 8"),
        ("8", True, "0 2 4 6 8"),
        ("10", True, "0 5 10"),
        ("3", True, "0 1 2 3"),
        ("1", True, "0 1"),
        ("0.4", True, "0 1"),
        ("1000", True, "0 250 500 750 1000"),
        ("0", True, "0"),
        ("0.30", False, "0 0.1 0.2 0.3"),
        ("19.75", False, "0 5 10 15 20"),
        ("1", False, "0 0.25 0.5 0.75 1"),
    ],
)
def test_ticks_are_round(maximum: str, integer: bool, expected: str) -> None:
    assert " ".join(map(plain, nice_ticks(Decimal(maximum), integer=integer))) == expected


def test_a_chart_is_an_accessible_svg_with_ticks_bars_and_legend() -> None:
    svg = bar_chart(
        "Bookings",
        DAYS,
        [
            Series("Made", [1, 7, 0, 3, 0, 0, 2], "bar-a"),
            Series("Cancelled", [0, 1, 0, 0, 0, 0, 0], "bar-b"),
        ],
        width=400,
        height=200,
    )
    root = parse(svg)
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    title_id, desc_id = root.get("aria-labelledby", "").split()
    title = root.find(f"{SVG}title")
    desc = root.find(f"{SVG}desc")
    assert title is not None and title.get("id") == title_id and title.text == "Bookings"
    assert desc is not None and desc.get("id") == desc_id
    assert desc.text == "d1 \u2013 d7: Made 13; Cancelled 1"
    assert texts(root, "tick") == ["0", "2", "4", "6", "8"]
    assert texts(root, "legend-label") == ["Made", "Cancelled"]
    bars = rects(root)
    assert [b.get("class") for b in bars] == ["bar-a", "bar-a", "bar-b", "bar-a", "bar-a"]
    assert [b.findtext(f"{SVG}title") for b in bars] == [
        "d1: Made 1",
        "d2: Made 7",
        "d2: Cancelled 1",
        "d4: Made 3",
        "d7: Made 2",
    ]
    # Heights follow the ticks: the 7 of d2 is 7/8 of the distance from 0 to the "8" tick.
    ticks = {
        t.text: float(t.get("y", "nan"))
        for t in root.iter(f"{SVG}text")
        if t.get("class") == "tick"
    }
    seven = bars[1]
    assert float(seven.get("y", "nan")) + float(seven.get("height", "nan")) == ticks["0"]
    assert float(seven.get("height", "nan")) == pytest.approx(
        (ticks["0"] - ticks["8"]) * 7 / 8, abs=0.1
    )
    # Grouped: the two bars of d2 stand side by side, the first of each series on the left.
    assert float(bars[2].get("x", "nan")) > float(bars[1].get("x", "nan"))


def test_stacked_bars_sit_on_each_other() -> None:
    root = parse(
        bar_chart(
            "Stack",
            ["a", "b"],
            [Series("x", [2, 0], "s1"), Series("y", [3, 4], "s2")],
            stacked=True,
        )
    )
    assert texts(root, "tick") == ["0", "2", "4", "6"]  # the stack of b is 4, of a 5
    x_a, y_a, x_b = rects(root)
    assert x_a.get("x") == y_a.get("x")
    assert float(y_a.get("y", "nan")) + float(y_a.get("height", "nan")) == pytest.approx(
        float(x_a.get("y", "nan")), abs=0.1
    )
    assert x_b.findtext(f"{SVG}title") == "b: y 4"


def test_every_text_is_escaped() -> None:
    svg = bar_chart(
        'Fees <&> "quoted"',
        ["<b>day</b>"],
        [Series("<script>alert(1)</script>", [1], 'x" onload="alert(1)')],
    )
    assert "<script" not in svg and "<b>" not in svg and 'onload="' not in svg
    assert "Fees &lt;&amp;&gt; &#34;quoted&#34;" in svg
    root = parse(svg)
    assert root.findtext(f"{SVG}title") == 'Fees <&> "quoted"'
    assert texts(root, "chart-title") == ['Fees <&> "quoted"']
    assert rects(root)[0].get("class") == 'x" onload="alert(1)'
    table = data_table("<&>", ["<i>"], [Series("<u>", [1], "c")], label_header="<th>")
    assert "<i>" not in table and "<u>" not in table and "&lt;&amp;&gt;" in table


@pytest.mark.parametrize("labels", [DAYS, []])
def test_zero_data_draws_an_axis_and_says_so(labels: list[str]) -> None:
    svg = bar_chart(
        "Nothing",
        labels,
        [Series("A", [0] * len(labels), "a"), Series("B", [Decimal("0.00")] * len(labels), "b")],
        no_data="Keine Daten",
    )
    root = parse(svg)
    assert rects(root) == []
    assert texts(root, "no-data") == ["Keine Daten"]
    assert texts(root, "tick") == ["0"]
    assert len([line for line in root.iter(f"{SVG}line") if line.get("class") == "axis"]) == 1
    assert not re.search(r"nan|inf", svg, re.IGNORECASE)
    assert parse(bar_chart("No series", DAYS, [])).find(f"{SVG}title") is not None


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        bar_chart("x", ["a"], [Series("s", [Decimal("NaN")], "c")])
    with pytest.raises(ValueError, match="one value per label"):
        bar_chart("x", ["a", "b"], [Series("s", [1], "c")])


def test_negative_values_draw_no_bar() -> None:
    root = parse(bar_chart("x", ["a", "b"], [Series("s", [Decimal("-2.00"), 3], "c")]))
    assert [r.findtext(f"{SVG}title") for r in rects(root)] == ["b: s 3"]


def test_thirty_days_label_every_fifth_counted_back_from_today() -> None:
    labels = [f"{n}." for n in range(1, 31)]
    root = parse(bar_chart("Month", labels, [Series("s", [1] * 30, "c")], width=640))
    assert texts(root, "x-label") == ["5.", "10.", "15.", "20.", "25.", "30."]
    assert label_every(30, 580) == 5
    assert label_every(7, 580) == 1
    assert label_every(365, 300) == 90


def test_data_table_has_a_row_per_label() -> None:
    table = ET.fromstring(
        data_table(
            "Fees",
            ["Nov 1", "Nov 2"],
            [Series("Fees", [Decimal("19.75"), 0], "c")],
            label_header="Day",
            value_format=lambda v: f"{v:.2f} EUR",
        )
    )
    assert table.findtext("caption") == "Fees"
    assert [th.text for th in table.iter("th")] == ["Day", "Fees", "Nov 1", "Nov 2"]
    assert [td.text for td in table.iter("td")] == ["19.75 EUR", "0.00 EUR"]


def sample_trends() -> Trends:
    start = date(2026, 10, 7)
    days = [DayTrend(day=start + timedelta(days=n)) for n in range(30)]
    days[18] = DayTrend(
        date(2026, 10, 25), bookings_agent=2, bookings_other=1, agent_calls=4, callbacks=1
    )
    days[25] = DayTrend(date(2026, 11, 1), cancellations=1, no_shows=2, fees=Decimal("1234.50"))
    return Trends("Europe/Berlin", "EUR", tuple(days), (("CHF", Decimal("5.00")),))


def test_german_charts() -> None:
    charts = charts_for(sample_trends(), DE)
    assert [c.title for c in charts] == [
        "Buchungen und Stornierungen",
        "Vom Agenten angenommene Anrufe und R\u00fcckrufw\u00fcnsche",
        "Nicht erschienen",
        "Berechnete Geb\u00fchren (EUR)",
    ]
    roots = [parse(c.svg) for c in charts]
    assert [texts(r, "legend-label") for r in roots] == [
        ["Buchungen", "Stornierungen"],
        ["Anrufe (Agent)", "R\u00fcckrufe"],
        ["Nicht erschienen"],
        ["Geb\u00fchren"],
    ]
    assert [len(rects(r)) for r in roots] == [2, 2, 1, 1]
    assert texts(roots[3], "tick") == ["0,00", "500,00", "1.000,00", "1.500,00"]
    assert rects(roots[3])[0].findtext(f"{SVG}title") == "1.11.: Geb\u00fchren 1.234,50 EUR"
    assert texts(roots[0], "x-label")[-1] == "5.11."
    assert len({r.get("aria-labelledby") for r in roots}) == 4  # unique ids on one page
    table = ET.fromstring(charts[2].table)
    assert table.get("class") == "visually-hidden"
    assert [td.text for td in table.iter("td")].count("0") == 29


def test_english_formats() -> None:
    assert EN.day(date(2026, 11, 3)) == "Nov 3"
    assert DE.day(date(2026, 11, 3)) == "3.11."
    assert EN.money(Decimal("1234.5"), "EUR") == "1,234.50 EUR"
    assert DE.money(Decimal("1234.5"), "EUR") == "1.234,50 EUR"
    assert EN.amount(Decimal("0")) == "0.00"
    charts = charts_for(sample_trends(), EN)
    assert charts[0].title == "Bookings and cancellations"
    assert texts(parse(charts[0].svg), "x-label")[-1] == "Nov 5"


def render_partial(language: str) -> str:
    # The page's settings (services/booking/ops/page.py: templates()).
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    template = env.get_template("ops/_charts.html")
    fmt = Formatter(language, UTC)
    return template.render(t=fmt.t, fmt=fmt, **chart_context(sample_trends(), fmt))


def test_partial_renders_four_charts_with_tables() -> None:
    html = render_partial("de")
    assert html.count("<svg ") == 4 and html.count("</svg>") == 4
    assert html.count('<table class="visually-hidden">') == 4
    assert html.count('<figure class="ops-chart">') == 4
    assert "Pro Tag, letzte 30 Tage" in html and "(Europe/Berlin)" in html
    assert "Geb\u00fchren in anderen W\u00e4hrungen (nicht im Diagramm):\n5,00 CHF" in html
    assert "<script" not in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    for svg in re.findall(r"<svg .*?</svg>", html, re.DOTALL):
        parse(svg)
    assert "Per day, last 30 days" in render_partial("en")


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def test_bar_colours_stand_out_against_the_card() -> None:
    source = (TEMPLATES / "ops" / "_charts.html").read_text(encoding="utf-8")
    colours = dict(re.findall(r"\.(bar-[a-z-]+) \{ fill: (#[0-9a-f]{6}); \}", source))
    classes = {"bar-bookings", "bar-cancellations", "bar-agent-calls", "bar-callbacks"}
    assert classes | {"bar-no-shows", "bar-fees"} == set(colours)
    for colour in colours.values():
        assert (1.05) / (_luminance(colour) + 0.05) >= 3.0, colour

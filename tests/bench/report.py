"""The final table: figure, ours, baseline, ratio, target, PASS/MISS."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    name: str
    ours: float
    baseline: float | None
    target: float | None  # None: a figure shown for comparison, without a target
    unit: str  # "ms", "/s", "stmts", "%", "MB", "x", "cores"
    higher_is_better: bool = False
    # What the baseline run cost this machine (see scenarios.machine_note): why a target the
    # baseline misses cannot be shown here.
    note: str = ""

    @property
    def passed(self) -> bool:
        if self.target is None:
            return True
        if math.isnan(self.ours):
            return False
        return self.ours >= self.target if self.higher_is_better else self.ours <= self.target

    @property
    def baseline_passes(self) -> bool | None:
        """Does the bare endpoint itself meet the target (None: no baseline)?"""
        if self.baseline is None or math.isnan(self.baseline) or self.target is None:
            return None
        if self.higher_is_better:
            return self.baseline >= self.target
        return self.baseline <= self.target

    @property
    def ratio(self) -> str:
        """ours / baseline: how many times the bare endpoint's cost (or rate) ours is."""
        if self.baseline is None or not self.baseline or math.isnan(self.baseline):
            return "-"
        return f"{self.ours / self.baseline:.2f}x"


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "n/a"
    if unit in ("stmts", "n"):
        return f"{value:.0f}"
    if unit == "/s":
        return f"{value:.0f}/s"
    if unit == "%":
        return f"{value:.1f} %"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "cores":
        return f"{value:.2f} cores"
    return f"{value:.1f} ms"


def table(figures: Sequence[Figure]) -> str:
    header = ("figure", "ours", "baseline", "ratio", "target", "result")
    rows = [
        (
            f.name,
            _value(f.ours, f.unit),
            _value(f.baseline, f.unit),
            f.ratio,
            "-"
            if f.target is None
            else ("≥ " if f.higher_is_better else "≤ ") + _value(f.target, f.unit),
            "info" if f.target is None else "PASS" if f.passed else "MISS",
        )
        for f in figures
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        return "  ".join(
            [first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))]
        )

    rule = "-" * len(line(header))
    notes = [
        "ratio = ours / baseline: above 1 for latencies and statements, below 1 for rates, "
        "means our layers cost that factor."
    ]
    notes += [
        f"{f.name}: the bare baseline itself measures {_value(f.baseline, f.unit)} against "
        f"{'≥' if f.higher_is_better else '≤'} {_value(f.target, f.unit)}, so this machine "
        "(client, servers, MariaDB and Redis sharing its CPUs) cannot show the target; the "
        f"ratio still can.{' ' + f.note if f.note else ''}"
        for f in figures
        if f.baseline_passes is False
    ]
    return "\n".join([rule, line(header), rule, *(line(row) for row in rows), rule, *notes])

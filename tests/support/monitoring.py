"""Reading deploy/monitoring/ (alert rules, Grafana dashboard) and the metric names it uses.

PromQL is parsed with promql-parser, a real parser: a syntax error or an unknown function fails,
and the names come from the selectors of the syntax tree (histograms as written: `x_bucket`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import promql_parser
import yaml
from prometheus_client.parser import text_string_to_metric_families

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
ALERTS = MONITORING / "alerts.yaml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
# Grafana's own variables, replaced as Grafana does before it sends a query.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "6h"}


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(ALERTS.read_text())["groups"]
    return groups


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of every panel."""
    return [
        (panel["title"], target["expr"])
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
    ]


def parse(expr: str) -> Any:
    """The syntax tree of `expr` (Grafana variables substituted); raises on invalid PromQL."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return promql_parser.parse(expr)


def metric_names(expr: str) -> set[str]:
    """The metric name of every selector in `expr`."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if not node.name:
                raise ValueError(f"a selector without a metric name in {expr!r}")
            names.add(node.name)

    promql_parser.walk(parse(expr), visit)
    return names


def referenced() -> dict[str, set[str]]:
    """Metric name -> where the rules and the dashboard use it."""
    uses: dict[str, set[str]] = {}
    for rule in alert_rules():
        for name in metric_names(rule["expr"]):
            uses.setdefault(name, set()).add(f"alert {rule['alert']}")
    for title, expr in dashboard_queries():
        for name in metric_names(expr):
            uses.setdefault(name, set()).add(f"panel {title!r}")
    return uses


def exported(text: str) -> set[str]:
    """Sample names with at least one sample in Prometheus text (`x_bucket`, `x_total`, ...)."""
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }


def missing(uses: Mapping[str, set[str]], names: set[str]) -> dict[str, list[str]]:
    """The used names without a sample, with where they are used."""
    return {name: sorted(where) for name, where in uses.items() if name not in names}

"""The alert rules fire at the seeds' thresholds, evaluated by Prometheus itself
(`promtool test rules`, Debian package `prometheus`) on synthetic series."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.monitoring import rule_groups

pytestmark = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (Debian: prometheus)"
)
BREAKER = "calcom:c1"


def series(metric: str, values: str, **labels: str) -> dict[str, str]:
    inner = ",".join(f'{key}="{value}"' for key, value in labels.items())
    return {"series": f"{metric}{{{inner}}}", "values": values}


def bookings(booked: int, errors: int) -> list[dict[str, str]]:
    """Counters growing by `booked`/`errors` (and 50 taken slots) every 15 s for 30 minutes."""
    return [
        series("booking_attempts_total", f"0+{booked}x120", source="agent", outcome="booked"),
        series("booking_attempts_total", f"0+{errors}x120", source="agent", outcome="error"),
        series("booking_attempts_total", "0+50x120", source="agent", outcome="slot_taken"),
    ]


def latency(above: float) -> list[dict[str, str]]:
    """Every booking request takes between `above` and the next bucket bound."""
    labels = {"service": "booking", "route": "/v1/appointments", "method": "POST", "status": "201"}
    return [
        series(
            "http_request_duration_seconds_bucket",
            "0x120" if le != "+Inf" and float(le) <= above else "0+100x120",
            **labels,
            le=le,
        )
        for le in ("0.5", "1.0", "1.5", "2.0", "2.5", "5.0", "+Inf")
    ]


def expect(alert: str, *firing: dict[str, str], at: str = "20m") -> dict[str, Any]:
    return {"eval_time": at, "alertname": alert, "exp_alerts": [{"exp_labels": x} for x in firing]}


def case(inputs: list[dict[str, str]], *expectations: dict[str, Any]) -> dict[str, Any]:
    return {"interval": "15s", "input_series": inputs, "alert_rule_test": list(expectations)}


CRITICAL, WARNING = {"severity": "critical"}, {"severity": "warning"}
CASES = [
    # 85 % of decided bookings succeed: critical, not the warning.
    case(
        bookings(85, 15),
        expect("BookingSuccessRateCritical", CRITICAL),
        expect("BookingSuccessRateLow"),
    ),
    # 93 %: the warning only (the taken slots do not count against the rate).
    case(
        bookings(93, 7),
        expect("BookingSuccessRateCritical"),
        expect("BookingSuccessRateLow", WARNING),
    ),
    case(bookings(99, 1), expect("BookingSuccessRateCritical"), expect("BookingSuccessRateLow")),
    # p95 between 1.5 and 2 s: warning; between 2 and 2.5 s: critical.
    case(
        latency(1.5),
        expect("LatencyP95High", {**WARNING, "service": "booking"}),
        expect("LatencyP95Critical"),
    ),
    case(
        latency(2.0),
        expect("LatencyP95High"),
        expect("LatencyP95Critical", {**CRITICAL, "service": "booking"}),
    ),
    # Opens at 1 min: not yet firing at 75 s, firing at 2 min; closed at 4.5 min: resolved.
    case(
        [
            series("circuit_breaker_state", "0x3 2x15 0x40", name=BREAKER),
            series("circuit_breaker_transitions_total", "0x3 1x56", name=BREAKER, to="open"),
            series("circuit_breaker_transitions_total", "0x18 1x40", name=BREAKER, to="closed"),
        ],
        expect("CircuitBreakerOpen", at="75s"),
        expect("CircuitBreakerOpen", {**CRITICAL, "name": BREAKER}, at="2m"),
        expect("CircuitBreakerOpen", at="6m"),
    ),
    # A process that last saw "open" an hour ago (and no transition since) does not alert.
    case(
        [
            series("circuit_breaker_state", "2x240", name=BREAKER),
            series("circuit_breaker_transitions_total", "1x240", name=BREAKER, to="open"),
        ],
        expect("CircuitBreakerOpen", at="59m"),
    ),
    # 30 % misses in one cache (alert), 10 % in another (none).
    case(
        [
            series("cache_requests_total", "0+70x120", cache="policy", outcome="hit"),
            series("cache_requests_total", "0+30x120", cache="policy", outcome="miss"),
            series("cache_requests_total", "0+90x120", cache="calcom_slots", outcome="hit"),
            series("cache_requests_total", "0+10x120", cache="calcom_slots", outcome="miss"),
        ],
        expect("CacheMissRateHigh", {**WARNING, "cache": "policy"}),
    ),
    # Overdue callbacks for 30 minutes; queued jobs waiting over two minutes.
    case(
        [
            series("callbacks_overdue", "3x240", instance="w1"),
            series("queue_oldest_job_age_seconds", "0+15x240", queue="arq:queue:booking"),
        ],
        expect("CallbacksOverdue", at="25m"),
        expect("CallbacksOverdue", WARNING, at="35m"),
        expect("QueueBacklog", {**WARNING, "queue": "arq:queue:booking"}, at="15m"),
    ),
    # Redis down for 3 minutes on booking only: degraded warning after 2 minutes, not before.
    case(
        [
            series("dependency_up", "1x4 0x12 1x40", service="booking", dependency="redis"),
            series("dependency_up", "1x56", service="booking", dependency="database"),
            series("dependency_up", "1x56", service="webhooks", dependency="redis"),
        ],
        expect("RedisDegraded", at="90s"),
        expect("RedisDegraded", {**WARNING, "service": "booking"}, at="3m30s"),
        expect("RedisDegraded", at="10m"),
    ),
    # Bookings refused without a database: critical after a minute of refusals.
    case(
        [
            series(
                "booking_refused_total",
                "0x8 0+3x20",
                source="api",
                reason="database_unavailable",
            )
        ],
        expect("BookingsRefusedDatabaseDown", at="2m"),
        expect(
            "BookingsRefusedDatabaseDown",
            {**CRITICAL, "reason": "database_unavailable"},
            at="5m",
        ),
    ),
]


def test_alert_thresholds_fire_as_the_seeds_say(tmp_path: Path) -> None:
    groups = rule_groups()
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations", None)  # promtool would compare the rendered texts too
    (tmp_path / "alerts.yaml").write_text(yaml.safe_dump({"groups": groups}))
    tests = {"rule_files": ["alerts.yaml"], "evaluation_interval": "15s", "tests": CASES}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        ["promtool", "test", "rules", "tests.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr

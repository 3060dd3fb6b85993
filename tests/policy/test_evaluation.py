"""The pure policy core: deadlines to the second, across DST and leap days, and quota windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.policy.evaluation import (
    Decision,
    Quota,
    Reason,
    can_cancel,
    count_in_window,
    deadline_for,
    deadline_local_iso,
)

BERLIN = ZoneInfo("Europe/Berlin")
SECOND = timedelta(seconds=1)
START = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, sec: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, sec, tzinfo=UTC)


def berlin(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, sec: int = 0
) -> datetime:
    """Berlin wall-clock time (fold=0 on the repeated autumn hour)."""
    return datetime(year, month, day, hour, minute, sec, tzinfo=BERLIN)


def D(value: str) -> Decimal:
    return Decimal(value)


def cancel(
    config: dict[str, Any],
    start: datetime,
    at: datetime,
    *,
    status: str = "confirmed",
    price: str = "80.00",
    recent: list[datetime] | int = 0,
) -> Decision:
    return can_cancel(
        start=start,
        status=status,
        at=at,
        config=config,
        price=D(price),
        currency="EUR",
        recent_changes=recent,
    )


def assert_cents(fee: Decimal) -> None:
    assert fee.as_tuple().exponent == -2, fee


# --- deadline boundary, to the second --------------------------------------------------------

TIERS = [
    {"min_hours_before": 0, "fee_percent": 50},
    {"min_hours_before": 24, "fee": 0},
]


@pytest.mark.parametrize(
    ("at", "allow_late", "allowed", "reason", "fee", "hours"),
    [
        (START - timedelta(hours=24) - SECOND, False, True, Reason.OK, "0.00", "24.00"),
        (START - timedelta(hours=24), False, True, Reason.OK, "0.00", "24.00"),
        (
            START - timedelta(hours=24) + SECOND,
            False,
            False,
            Reason.DEADLINE_PASSED,
            "0.00",
            "23.99",
        ),
        (START - timedelta(hours=24) + SECOND, True, True, Reason.LATE_FEE, "40.00", "23.99"),
        (START - SECOND, True, True, Reason.LATE_FEE, "40.00", "0.00"),
        (START - SECOND, False, False, Reason.DEADLINE_PASSED, "0.00", "0.00"),
        (START, True, False, Reason.APPOINTMENT_IN_PAST, "0.00", "0.00"),
        (START + SECOND, True, False, Reason.APPOINTMENT_IN_PAST, "0.00", "-0.01"),
    ],
)
def test_deadline_boundary_to_the_second(
    at: datetime, allow_late: bool, allowed: bool, reason: Reason, fee: str, hours: str
) -> None:
    config = {"hours_before": 24, "allow_late": allow_late, "fee_tiers": TIERS}
    decision = cancel(config, START, at)
    assert decision == Decision(
        allowed=allowed,
        reason=reason,
        fee=D(fee),
        currency="EUR",
        deadline=utc(2026, 6, 14, 12, 0),
        hours_before_appointment=D(hours),
        quota=Quota(used=0, limit=None, window_days=30),
    )
    assert_cents(decision.fee)
    assert decision.deadline.tzinfo is UTC


def test_fractional_hours_before_deadline_is_exact() -> None:
    config = {"hours_before": "1.5"}
    assert deadline_for(START, D("1.5")) == utc(2026, 6, 15, 10, 30)
    assert cancel(config, START, utc(2026, 6, 15, 10, 30)).reason == Reason.OK
    assert cancel(config, START, utc(2026, 6, 15, 10, 30, 1)).reason == Reason.DEADLINE_PASSED


def test_zero_hours_before_allows_until_the_start() -> None:
    config = {"hours_before": 0}
    assert cancel(config, START, START - SECOND).reason == Reason.OK
    assert cancel(config, START, START).reason == Reason.APPOINTMENT_IN_PAST


# --- 23:59 / 00:01 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "at", "allowed", "reason", "fee", "hours"),
    [
        # checked at 00:01 the next day: the appointment began two minutes ago
        (
            {"hours_before": 24},
            berlin(2026, 5, 5, 0, 1),
            False,
            Reason.APPOINTMENT_IN_PAST,
            "0.00",
            "-0.04",
        ),
        (
            {"hours_before": 0},
            berlin(2026, 5, 5, 0, 1),
            False,
            Reason.APPOINTMENT_IN_PAST,
            "0.00",
            "-0.04",
        ),
        # checked at 00:01 the same day: 23 h 58 min before, two minutes past a 24 h deadline
        (
            {"hours_before": 24},
            berlin(2026, 5, 4, 0, 1),
            False,
            Reason.DEADLINE_PASSED,
            "0.00",
            "23.96",
        ),
        (
            {
                "hours_before": 24,
                "allow_late": True,
                "fee_tiers": [{"min_hours_before": 0, "fee": 15}],
            },
            berlin(2026, 5, 4, 0, 1),
            True,
            Reason.LATE_FEE,
            "15.00",
            "23.96",
        ),
        ({"hours_before": 12}, berlin(2026, 5, 4, 0, 1), True, Reason.OK, "0.00", "23.96"),
        ({"hours_before": 24}, berlin(2026, 5, 3, 23, 59), True, Reason.OK, "0.00", "24.00"),
    ],
)
def test_appointment_at_2359_checked_at_0001(
    config: dict[str, Any], at: datetime, allowed: bool, reason: Reason, fee: str, hours: str
) -> None:
    start = berlin(2026, 5, 4, 23, 59)
    decision = cancel(config, start, at)
    assert (decision.allowed, decision.reason, decision.fee) == (allowed, reason, D(fee))
    assert decision.hours_before_appointment == D(hours)


def test_2359_deadline_lies_on_the_previous_local_day() -> None:
    decision = cancel({"hours_before": 24}, berlin(2026, 5, 4, 23, 59), berlin(2026, 5, 4, 0, 1))
    assert decision.deadline == utc(2026, 5, 3, 21, 59)
    assert deadline_local_iso(decision.deadline, "Europe/Berlin") == "2026-05-03T23:59:00+02:00"


# --- DST in Europe/Berlin: 2026-03-29 has 23 h, 2026-10-25 has 25 h ---------------------------


@pytest.mark.parametrize(
    ("start", "hours_before", "deadline_utc", "deadline_local"),
    [
        # DST begins 2026-03-29 02:00 CET -> 03:00 CEST
        (berlin(2026, 3, 30, 10), 24, utc(2026, 3, 29, 8), "2026-03-29T10:00:00+02:00"),
        (berlin(2026, 3, 29, 10), 24, utc(2026, 3, 28, 8), "2026-03-28T09:00:00+01:00"),
        (berlin(2026, 3, 30, 10), 48, utc(2026, 3, 28, 8), "2026-03-28T09:00:00+01:00"),
        # 04:00 CEST minus 3 elapsed hours is 00:00 CET: four wall-clock hours
        (berlin(2026, 3, 29, 4), 3, utc(2026, 3, 28, 23), "2026-03-29T00:00:00+01:00"),
        # DST ends 2026-10-25 03:00 CEST -> 02:00 CET
        (berlin(2026, 10, 26, 10), 24, utc(2026, 10, 25, 9), "2026-10-25T10:00:00+01:00"),
        (berlin(2026, 10, 25, 10), 24, utc(2026, 10, 24, 9), "2026-10-24T11:00:00+02:00"),
        (berlin(2026, 10, 26, 10), 48, utc(2026, 10, 24, 9), "2026-10-24T11:00:00+02:00"),
        # 04:00 CET minus 3 elapsed hours is the first 02:00 (CEST): two wall-clock hours
        (berlin(2026, 10, 25, 4), 3, utc(2026, 10, 25, 0), "2026-10-25T02:00:00+02:00"),
    ],
)
def test_deadline_in_elapsed_hours_across_dst(
    start: datetime, hours_before: int, deadline_utc: datetime, deadline_local: str
) -> None:
    decision = cancel({"hours_before": hours_before}, start, deadline_utc - timedelta(days=3))
    assert decision.deadline == deadline_utc
    assert deadline_local_iso(decision.deadline, "Europe/Berlin") == deadline_local
    assert cancel({"hours_before": hours_before}, start, deadline_utc).reason == Reason.OK
    late = cancel({"hours_before": hours_before}, start, deadline_utc + SECOND)
    assert late.reason == Reason.DEADLINE_PASSED


@pytest.mark.parametrize(
    ("start", "at", "hours", "reason"),
    [
        # same wall-clock time the day before is only 23 elapsed hours in spring ...
        (berlin(2026, 3, 29, 10), berlin(2026, 3, 28, 10), "23.00", Reason.DEADLINE_PASSED),
        (berlin(2026, 3, 29, 10), berlin(2026, 3, 28, 9), "24.00", Reason.OK),
        # ... and 25 in autumn
        (berlin(2026, 10, 25, 10), berlin(2026, 10, 24, 10), "25.00", Reason.OK),
        (berlin(2026, 10, 25, 10), berlin(2026, 10, 24, 11), "24.00", Reason.OK),
        (berlin(2026, 10, 25, 10), berlin(2026, 10, 24, 11, 0, 1), "23.99", Reason.DEADLINE_PASSED),
    ],
)
def test_hours_before_appointment_counts_real_time_across_dst(
    start: datetime, at: datetime, hours: str, reason: Reason
) -> None:
    decision = cancel({"hours_before": 24}, start, at)
    assert decision.hours_before_appointment == D(hours)
    assert decision.reason == reason


# --- 29 February 2028 --------------------------------------------------------------------------


def test_leap_day_2028() -> None:
    on_leap_day = cancel({"hours_before": 24}, berlin(2028, 2, 29, 10), berlin(2028, 2, 28, 10))
    assert on_leap_day.reason == Reason.OK
    assert deadline_local_iso(on_leap_day.deadline, "Europe/Berlin") == "2028-02-28T10:00:00+01:00"

    across = cancel({"hours_before": 48}, berlin(2028, 3, 1, 10), berlin(2028, 2, 28, 10))
    assert across.hours_before_appointment == D("48.00")
    assert across.reason == Reason.OK
    assert across.deadline == utc(2028, 2, 28, 9)

    past = cancel({"hours_before": 24}, berlin(2028, 2, 29, 23, 59), berlin(2028, 3, 1, 0, 1))
    assert past.reason == Reason.APPOINTMENT_IN_PAST


def test_quota_window_across_leap_day() -> None:
    at = utc(2028, 3, 15, 12)  # 2028-02-14 12:00 is exactly 30 x 24 h earlier (via 29 Feb)
    assert at - utc(2028, 2, 14, 12) == timedelta(days=30)
    assert count_in_window([utc(2028, 2, 14, 12)], at=at, window_days=30) == 0
    assert count_in_window([utc(2028, 2, 14, 12, 0, 1)], at=at, window_days=30) == 1


# --- quota window ---------------------------------------------------------------------------------


@pytest.mark.parametrize("window_days", [1, 7, 30])
@pytest.mark.parametrize(
    ("oldest_age", "used", "allowed", "reason"),
    [
        ("exact", 1, True, Reason.OK),  # exactly window_days x 24 h old: no longer counts
        ("younger", 2, False, Reason.QUOTA_EXCEEDED),  # one second younger: counts
    ],
)
def test_quota_window_boundary(
    window_days: int, oldest_age: str, used: int, allowed: bool, reason: Reason
) -> None:
    at = START - timedelta(days=3)
    window = timedelta(days=window_days)
    oldest = at - window if oldest_age == "exact" else at - window + SECOND
    changes = [oldest, at - timedelta(hours=1)]
    config = {"hours_before": 24, "max_per_window": 2, "window_days": window_days}
    decision = cancel(config, START, at, recent=changes)
    assert decision.quota == Quota(used=used, limit=2, window_days=window_days)
    assert (decision.allowed, decision.reason) == (allowed, reason)


def test_quota_counts_changes_in_other_zones_and_after_at() -> None:
    at = utc(2026, 6, 1, 12)
    changes = [
        berlin(2026, 5, 2, 14, 0, 1),  # 12:00:01 UTC, one second inside a 30-day window
        berlin(2026, 5, 2, 14, 0, 0),  # exactly 30 days: out
        utc(2026, 6, 1, 12, 0, 5),  # after `at` (clock skew between replicas): counts
    ]
    assert count_in_window(changes, at=at, window_days=30) == 2


@pytest.mark.parametrize(
    ("limit", "used", "reason"),
    [
        (None, 1000, Reason.OK),
        (0, 0, Reason.QUOTA_EXCEEDED),
        (3, 2, Reason.OK),
        (3, 3, Reason.QUOTA_EXCEEDED),
    ],
)
def test_quota_from_a_precomputed_count(limit: int | None, used: int, reason: Reason) -> None:
    config = {"max_per_window": limit}
    decision = cancel(config, START, START - timedelta(days=2), recent=used)
    assert decision.reason == reason
    assert decision.quota == Quota(used=used, limit=limit, window_days=30)

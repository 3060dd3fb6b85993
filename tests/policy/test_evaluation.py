"""The pure policy core: deadlines, reasons, tier fees and quota windows, to the second."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.policy.evaluation import (
    Decision,
    Policy,
    Quota,
    Reason,
    calculate_fee,
    can_cancel,
    can_reschedule,
    count_in_window,
    deadline_for,
    deadline_local_iso,
)
from shared.errors import InvalidInput

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


# --- every reason code and the order of checks --------------------------------------------------

LATE = START - timedelta(hours=2)
EARLY = START - timedelta(days=2)
PAST = START + timedelta(minutes=1)
STRICT: dict[str, Any] = {"hours_before": 24, "max_per_window": 2, "max_per_appointment": 1}
LENIENT: dict[str, Any] = {
    **STRICT,
    "allow_late": True,
    "fee_tiers": [{"min_hours_before": 0, "fee": 5}],
}

REASON_CASES = [
    # action, status, at, recent, reschedules, config, allowed, reason, fee
    ("cancel", "confirmed", EARLY, 0, 0, STRICT, True, Reason.OK, "0.00"),
    ("cancel", "pending", EARLY, 0, 0, STRICT, True, Reason.OK, "0.00"),
    ("cancel", "confirmed", LATE, 0, 0, LENIENT, True, Reason.LATE_FEE, "5.00"),
    ("cancel", "confirmed", LATE, 0, 0, STRICT, False, Reason.DEADLINE_PASSED, "0.00"),
    ("cancel", "confirmed", PAST, 0, 0, LENIENT, False, Reason.APPOINTMENT_IN_PAST, "0.00"),
    ("cancel", "cancelled", EARLY, 0, 0, STRICT, False, Reason.NOT_MODIFIABLE, "0.00"),
    ("cancel", "completed", EARLY, 0, 0, STRICT, False, Reason.NOT_MODIFIABLE, "0.00"),
    ("cancel", "no_show", EARLY, 0, 0, STRICT, False, Reason.NOT_MODIFIABLE, "0.00"),
    ("cancel", "rescheduled", EARLY, 0, 0, STRICT, False, Reason.NOT_MODIFIABLE, "0.00"),
    ("cancel", "archived", EARLY, 0, 0, STRICT, False, Reason.NOT_MODIFIABLE, "0.00"),
    ("cancel", "confirmed", EARLY, 2, 0, STRICT, False, Reason.QUOTA_EXCEEDED, "0.00"),
    ("reschedule", "confirmed", EARLY, 1, 0, STRICT, True, Reason.OK, "0.00"),
    ("reschedule", "confirmed", LATE, 1, 0, LENIENT, True, Reason.LATE_FEE, "5.00"),
    ("reschedule", "confirmed", LATE, 1, 0, STRICT, False, Reason.DEADLINE_PASSED, "0.00"),
    ("reschedule", "confirmed", EARLY, 0, 1, STRICT, False, Reason.MAX_RESCHEDULES_REACHED, "0.00"),
    ("reschedule", "confirmed", EARLY, 2, 0, STRICT, False, Reason.QUOTA_EXCEEDED, "0.00"),
    ("reschedule", "rescheduled", EARLY, 0, 0, STRICT, False, Reason.NOT_MODIFIABLE, "0.00"),
    ("reschedule", "confirmed", PAST, 0, 0, STRICT, False, Reason.APPOINTMENT_IN_PAST, "0.00"),
    # order: not_modifiable, appointment_in_past, quota_exceeded, max_reschedules, deadline
    ("reschedule", "cancelled", PAST, 5, 5, STRICT, False, Reason.NOT_MODIFIABLE, "0.00"),
    ("reschedule", "confirmed", PAST, 5, 5, STRICT, False, Reason.APPOINTMENT_IN_PAST, "0.00"),
    ("reschedule", "confirmed", LATE, 5, 5, STRICT, False, Reason.QUOTA_EXCEEDED, "0.00"),
    ("reschedule", "confirmed", LATE, 0, 5, STRICT, False, Reason.MAX_RESCHEDULES_REACHED, "0.00"),
    ("cancel", "confirmed", LATE, 5, 0, STRICT, False, Reason.QUOTA_EXCEEDED, "0.00"),
]


def _decide(
    action: str, status: str, at: datetime, recent: int, reschedules: int, config: Any
) -> Decision:
    common: dict[str, Any] = {
        "start": START,
        "status": status,
        "at": at,
        "price": D("60.00"),
        "currency": "CHF",
        "recent_changes": recent,
    }
    if action == "cancel":
        config = {k: v for k, v in config.items() if k != "max_per_appointment"}
        return can_cancel(config=config, **common)
    return can_reschedule(config=config, reschedule_count=reschedules, **common)


@pytest.mark.parametrize(
    ("action", "status", "at", "recent", "reschedules", "config", "allowed", "reason", "fee"),
    REASON_CASES,
)
def test_reason_codes_and_check_order(
    action: str,
    status: str,
    at: datetime,
    recent: int,
    reschedules: int,
    config: dict[str, Any],
    allowed: bool,
    reason: Reason,
    fee: str,
) -> None:
    decision = _decide(action, status, at, recent, reschedules, config)
    assert (decision.allowed, decision.reason, decision.fee) == (allowed, reason, D(fee))
    assert decision.currency == "CHF"
    assert decision.deadline == START - timedelta(hours=24)
    assert decision.quota == Quota(used=recent, limit=2, window_days=30)
    assert_cents(decision.fee)


def test_every_reason_code_is_covered_and_is_a_plain_string() -> None:
    assert {case[7] for case in REASON_CASES} == set(Reason)
    assert {str(reason) for reason in Reason} == {
        "ok",
        "late_fee",
        "deadline_passed",
        "appointment_in_past",
        "not_modifiable",
        "quota_exceeded",
        "max_reschedules_reached",
    }


def test_unlimited_reschedules_and_defaults() -> None:
    decision = can_reschedule(
        start=START, status="confirmed", at=EARLY, config={}, price=D("10"), currency="EUR",
        recent_changes=[], reschedule_count=99,
    )  # fmt: skip
    assert decision.reason == Reason.OK
    assert decision.deadline == START - timedelta(hours=24)  # default hours_before 24


def test_decision_is_frozen() -> None:
    decision = cancel({}, START, EARLY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.allowed = False  # type: ignore[misc]


# --- fee tiers ------------------------------------------------------------------------------------

LADDER = [
    {"min_hours_before": 0, "fee": "30.00"},
    {"min_hours_before": 12, "fee_percent": 50},
    {"min_hours_before": 24, "fee": "10.00"},
    {"min_hours_before": 48, "fee": 0},
]


@pytest.mark.parametrize(
    ("tiers", "before", "fee"),
    [
        (LADDER, timedelta(hours=72), "0.00"),
        (LADDER, timedelta(hours=48), "0.00"),  # min_hours_before == hours before: applies
        (LADDER, timedelta(hours=48) - SECOND, "10.00"),
        (LADDER, timedelta(hours=24), "10.00"),
        (LADDER, timedelta(hours=24) - SECOND, "40.00"),
        (LADDER, timedelta(hours=12), "40.00"),
        (LADDER, timedelta(hours=12) - SECOND, "30.00"),
        (LADDER, SECOND, "30.00"),
        (LADDER, timedelta(0), "30.00"),
        (LADDER, -SECOND, "0.00"),  # already started: no tier applies
        ([{"min_hours_before": 24, "fee": 5}], timedelta(hours=1), "0.00"),  # below every tier
        ([], timedelta(hours=1), "0.00"),
        ([{"min_hours_before": "1.5", "fee": 7}], timedelta(minutes=90), "7.00"),
        ([{"min_hours_before": "1.5", "fee": 7}], timedelta(minutes=90) - SECOND, "0.00"),
    ],
)
def test_tier_selection(tiers: list[dict[str, Any]], before: timedelta, fee: str) -> None:
    config = {"fee_tiers": tiers}
    result = calculate_fee(config, start=START, at=START - before, price=D("80.00"))
    assert result == D(fee)
    assert_cents(result)
    if before > timedelta(0):
        late = cancel({**config, "hours_before": 1000, "allow_late": True}, START, START - before)
        assert (late.reason, late.fee) == (Reason.LATE_FEE, D(fee))


@pytest.mark.parametrize(
    ("price", "percent", "fee"),
    [
        ("19.99", "12.5", "2.50"),  # 2.49875 -> 2.50
        ("10.00", "33.33", "3.33"),  # 3.333
        ("0.05", "50", "0.03"),  # 0.025 -> 0.03 (half-up, not banker's 0.02)
        ("0.01", "50", "0.01"),  # 0.005 -> 0.01
        ("1.00", "0.5", "0.01"),  # 0.005 -> 0.01
        ("1.00", "0.49", "0.00"),  # 0.0049
        ("99.99", "0.01", "0.01"),  # 0.009999
        ("19.99", "100", "19.99"),
        ("19.99", "0", "0.00"),
        ("0", "75", "0.00"),
        ("45", "15", "6.75"),
    ],
)
def test_percent_fee_rounds_half_up_to_cents(price: str, percent: str, fee: str) -> None:
    config = {"fee_tiers": [{"min_hours_before": 0, "fee_percent": percent}]}
    result = calculate_fee(config, start=START, at=EARLY, price=D(price))
    assert result == D(fee)
    assert_cents(result)


def test_calculate_fee_accepts_a_policy_and_reschedule_configs() -> None:
    policy = Policy.from_config("reschedule", {"fee_tiers": LADDER, "max_per_appointment": 2})
    assert policy.max_per_appointment == 2
    assert calculate_fee(policy, start=START, at=LATE, price=D("80.00")) == D("30.00")
    reschedule_config = {"fee_tiers": LADDER, "max_per_appointment": 2}
    fee = calculate_fee(reschedule_config, start=START, at=LATE, price=80, policy_type="reschedule")
    assert fee == D("30.00")


# --- properties ---------------------------------------------------------------------------

prices = st.decimals(min_value=0, max_value=100_000, places=2)
seconds_before = st.integers(min_value=0, max_value=400 * 3600)


@st.composite
def percent_tiers(draw: st.DrawFn) -> list[dict[str, Any]]:
    hours = draw(st.lists(st.integers(0, 300), min_size=1, max_size=6, unique=True))
    return [
        {"min_hours_before": h, "fee_percent": draw(st.decimals(0, 100, places=2))}
        for h in sorted(hours)
    ]


@given(tiers=percent_tiers(), price=prices, before=seconds_before)
def test_percent_fee_never_exceeds_the_price(
    tiers: list[dict[str, Any]], price: Decimal, before: int
) -> None:
    at = START - timedelta(seconds=before)
    fee = calculate_fee({"fee_tiers": tiers}, start=START, at=at, price=price)
    assert D("0.00") <= fee <= price
    assert_cents(fee)


@st.composite
def monotone_tiers(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Ascending min_hours_before starting at 0, fees non-increasing further from the start.

    Starting at 0 matters: a set whose lowest tier is above 0 charges nothing inside that
    tier, so its fee would drop as the appointment approaches.
    """
    extra = draw(st.lists(st.integers(1, 300), max_size=5, unique=True))
    hours = [0, *sorted(extra)]
    kind = draw(st.sampled_from(["fee", "fee_percent"]))
    top = D("100") if kind == "fee_percent" else D("500")
    amounts = draw(
        st.lists(st.decimals(0, top, places=2), min_size=len(hours), max_size=len(hours))
    )
    amounts.sort(reverse=True)
    return [{"min_hours_before": h, kind: a} for h, a in zip(hours, amounts, strict=True)]


@given(tiers=monotone_tiers(), price=prices, far=seconds_before, near=seconds_before)
def test_fee_never_decreases_as_the_appointment_gets_closer(
    tiers: list[dict[str, Any]], price: Decimal, far: int, near: int
) -> None:
    far, near = max(far, near), min(far, near)
    config = {"fee_tiers": tiers, "allow_late": True}
    fee_far = calculate_fee(config, start=START, at=START - timedelta(seconds=far), price=price)
    fee_near = calculate_fee(config, start=START, at=START - timedelta(seconds=near), price=price)
    assert fee_far <= fee_near
    if near > 0:
        decision = cancel(config, START, START - timedelta(seconds=near), price=str(price))
        assert decision.allowed
        assert decision.fee == fee_near


# --- inputs and helpers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"start": datetime(2026, 6, 15, 12)}, "start"),  # naive: refused, never guessed
        ({"at": datetime(2026, 6, 14, 12)}, "at"),
        ({"start": utc(1, 1, 1, 5), "at": utc(1, 1, 1, 1)}, "start"),  # deadline before year 1
        ({"at": utc(1, 1, 2), "start": utc(1, 1, 3), "recent_changes": []}, "at"),
        ({"price": D("-1")}, "price"),
        ({"price": D("1E+20")}, "price"),
        ({"price": True}, "price"),
        ({"recent_changes": -1}, "recent_changes"),
        ({"recent_changes": [datetime(2026, 6, 1)]}, "recent_changes"),
        ({"config": {"hours_before": -1}}, "hours_before"),
        ({"config": {"max_per_appointment": 1}}, "max_per_appointment"),
    ],
)
def test_bad_inputs_raise_invalid_input(kwargs: dict[str, Any], field: str) -> None:
    arguments: dict[str, Any] = {
        "start": START,
        "status": "confirmed",
        "at": EARLY,
        "config": {},
        "price": D("10.00"),
        "currency": "EUR",
        "recent_changes": 0,
        **kwargs,
    }
    with pytest.raises(InvalidInput) as caught:
        can_cancel(**arguments)
    assert caught.value.extra["field"] == field


@pytest.mark.parametrize("count", [-1, True])
def test_reschedule_count_must_be_a_non_negative_int(count: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        can_reschedule(
            start=START, status="confirmed", at=EARLY, config={}, price=D("1"),
            currency="EUR", recent_changes=0, reschedule_count=count,
        )  # fmt: skip
    assert caught.value.extra["field"] == "reschedule_count"


def test_a_policy_of_the_other_type_is_refused() -> None:
    policy = Policy.from_config("reschedule", {})
    with pytest.raises(InvalidInput):
        can_cancel(
            start=START, status="confirmed", at=EARLY, config=policy, price=D("1"),
            currency="EUR", recent_changes=0,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("tz_name", "expected"),
    [
        ("Europe/Berlin", "2026-06-14T14:00:00+02:00"),
        ("UTC", "2026-06-14T12:00:00+00:00"),
        ("America/New_York", "2026-06-14T08:00:00-04:00"),
        ("Asia/Kolkata", "2026-06-14T17:30:00+05:30"),
    ],
)
def test_deadline_local_iso(tz_name: str, expected: str) -> None:
    assert deadline_local_iso(utc(2026, 6, 14, 12), tz_name) == expected


@pytest.mark.parametrize("tz_name", ["Mars/Olympus", "", "../etc/passwd", "Europe"])
def test_deadline_local_iso_unknown_zone(tz_name: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        deadline_local_iso(utc(2026, 6, 14, 12), tz_name)
    assert caught.value.extra["field"] == "timezone"

"""The pure policy core: reason codes and their order, tier and percent fees, bad inputs,
the local deadline."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

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
    deadline_local_iso,
)
from shared.errors import InvalidInput
from tests.policy.test_evaluation import (
    SECOND,
    START,
    D,
    assert_cents,
    cancel,
    utc,
)

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

"""Money is charged only when due (ADR 0016): `hours_before` is the free-change deadline, the
tiers price only what comes after it; the seeds' one-fee shorthand; tiers in any order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.policy.config_schema import validate_config
from services.policy.evaluation import (
    Decision,
    Policy,
    Reason,
    calculate_fee,
    can_cancel,
    can_reschedule,
)
from services.policy.schemas import PolicyConfigIn
from shared.errors import InvalidInput

BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
# The operator's policy of issue 13: free from 48 h, 10 EUR from 24 h, 20 EUR below.
OPERATOR: dict[str, Any] = {
    "hours_before": 48,
    "allow_late": True,
    "fee_tiers": [{"min_hours_before": 0, "fee": 20}, {"min_hours_before": 24, "fee": 10}],
}
SHORTHAND: dict[str, Any] = {"hours_before": 24, "fee": 10.00}


def berlin(month: int, day: int, hour: int, minute: int = 0, sec: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, sec, tzinfo=BERLIN)


def cancel(
    config: dict[str, Any], at: datetime, *, start: datetime = START, price: str = "80.00"
) -> Decision:
    return can_cancel(
        start=start,
        status="confirmed",
        at=at,
        config=config,
        price=Decimal(price),
        currency="EUR",
        recent_changes=0,
    )


@pytest.mark.parametrize(
    ("before", "allowed", "reason", "fee", "hours"),
    [
        (timedelta(days=8), True, Reason.OK, "0.00", "192.00"),  # the reported overcharge
        (timedelta(hours=49), True, Reason.OK, "0.00", "49.00"),
        (timedelta(hours=48), True, Reason.OK, "0.00", "48.00"),  # at the deadline: free
        (timedelta(hours=48) - timedelta(seconds=1), True, Reason.LATE_FEE, "10.00", "47.99"),
        (timedelta(hours=47, minutes=59, seconds=24), True, Reason.LATE_FEE, "10.00", "47.99"),
        (timedelta(hours=30), True, Reason.LATE_FEE, "10.00", "30.00"),
        (timedelta(hours=24), True, Reason.LATE_FEE, "10.00", "24.00"),
        (timedelta(hours=23, minutes=30), True, Reason.LATE_FEE, "20.00", "23.50"),
        (timedelta(minutes=30), True, Reason.LATE_FEE, "20.00", "0.50"),
        (timedelta(seconds=1), True, Reason.LATE_FEE, "20.00", "0.00"),
        (timedelta(0), False, Reason.APPOINTMENT_IN_PAST, "0.00", "0.00"),
        (-timedelta(minutes=1), False, Reason.APPOINTMENT_IN_PAST, "0.00", "-0.02"),
    ],
)
def test_operator_policy_charges_only_after_the_deadline(
    before: timedelta, allowed: bool, reason: Reason, fee: str, hours: str
) -> None:
    decision = cancel(OPERATOR, START - before)
    assert (decision.allowed, decision.reason, decision.fee) == (allowed, reason, Decimal(fee))
    assert decision.hours_before_appointment == Decimal(hours)
    assert decision.deadline == datetime(2026, 6, 13, 12, 0, tzinfo=UTC)
    if before > timedelta(0):
        fee_alone = calculate_fee(OPERATOR, start=START, at=START - before, price=Decimal("80"))
        assert fee_alone == Decimal(fee)


@pytest.mark.parametrize(
    ("before", "allowed", "reason"),
    [
        (timedelta(days=8), True, Reason.OK),
        (timedelta(hours=48), True, Reason.OK),
        (timedelta(hours=30), False, Reason.DEADLINE_PASSED),
        (timedelta(minutes=30), False, Reason.DEADLINE_PASSED),
    ],
)
def test_without_allow_late_a_late_change_is_refused_at_no_fee(
    before: timedelta, allowed: bool, reason: Reason
) -> None:
    decision = cancel({**OPERATOR, "allow_late": False}, START - before)
    assert (decision.allowed, decision.reason, decision.fee) == (allowed, reason, Decimal("0.00"))


@pytest.mark.parametrize(
    ("start", "at", "reason", "fee"),
    [
        # DST begins 2026-03-29: the same wall-clock time two days earlier is 47 elapsed hours
        (berlin(3, 30, 10), berlin(3, 28, 9), Reason.OK, "0.00"),  # 48 h: free
        (berlin(3, 30, 10), berlin(3, 28, 10), Reason.LATE_FEE, "10.00"),  # 47 h
        # DST ends 2026-10-25: the same wall-clock time two days earlier is 49 elapsed hours
        (berlin(10, 26, 10), berlin(10, 24, 10), Reason.OK, "0.00"),  # 49 h
        (berlin(10, 26, 10), berlin(10, 24, 11), Reason.OK, "0.00"),  # 48 h: free
        (berlin(10, 26, 10), berlin(10, 24, 11, 0, 1), Reason.LATE_FEE, "10.00"),
        # the 24 h tier across the spring change: 09:00 the day before is 24 elapsed hours
        (berlin(3, 29, 10), berlin(3, 28, 9), Reason.LATE_FEE, "10.00"),
        (berlin(3, 29, 10), berlin(3, 28, 10), Reason.LATE_FEE, "20.00"),  # 23 h
    ],
)
def test_deadline_and_tiers_count_elapsed_hours_across_dst(
    start: datetime, at: datetime, reason: Reason, fee: str
) -> None:
    decision = cancel(OPERATOR, at, start=start)
    assert (decision.reason, decision.fee) == (reason, Decimal(fee))


@pytest.mark.parametrize(
    ("config", "before", "price", "reason", "fee"),
    [
        (SHORTHAND, timedelta(hours=25), "80.00", Reason.OK, "0.00"),
        (SHORTHAND, timedelta(hours=24), "80.00", Reason.OK, "0.00"),
        (SHORTHAND, timedelta(hours=23), "80.00", Reason.LATE_FEE, "10.00"),
        (SHORTHAND, timedelta(minutes=5), "80.00", Reason.LATE_FEE, "10.00"),
        ({"hours_before": 24, "fee_percent": 12.5}, timedelta(hours=23), "19.99", "late", "2.50"),
        ({"hours_before": 24, "fee_percent": "50"}, timedelta(hours=25), "19.99", "ok", "0.00"),
        ({"hours_before": 24, "fee_percent": "33.33"}, timedelta(hours=1), "10.00", "late", "3.33"),
        ({"hours_before": 24, "fee_percent": 100}, timedelta(hours=1), "0.05", "late", "0.05"),
    ],
)
def test_the_seeds_shorthand_is_one_fee_after_the_deadline(
    config: dict[str, Any], before: timedelta, price: str, reason: str, fee: str
) -> None:
    decision = cancel(config, START - before, price=price)
    expected = {"ok": Reason.OK, "late": Reason.LATE_FEE}.get(reason, reason)
    assert (decision.allowed, decision.reason, decision.fee) == (True, expected, Decimal(fee))
    assert decision.fee.as_tuple().exponent == -2


def test_without_hours_before_the_tiers_apply_as_before() -> None:
    """A ladder of tiers alone (hours_before not set at any level): the default 24 h decides
    what is allowed, the tiers price every hour, their zero tier making the far future free."""
    ladder = {
        "allow_late": True,
        "fee_tiers": [
            {"min_hours_before": 48, "fee": 0},
            {"min_hours_before": 0, "fee": 20},
            {"min_hours_before": 24, "fee": 10},
        ],
    }
    policy = Policy.from_config("cancellation", ladder)
    assert (policy.hours_before, policy.free_before_deadline) == (Decimal(24), False)
    assert Policy.from_config("cancellation", OPERATOR).free_before_deadline is True
    cases = [
        (timedelta(days=8), Reason.OK, "0.00"),
        (timedelta(hours=30), Reason.OK, "10.00"),
        (timedelta(hours=10), Reason.LATE_FEE, "20.00"),
    ]
    for before, reason, fee in cases:
        decision = cancel(ladder, START - before)
        assert (decision.reason, decision.fee) == (reason, Decimal(fee)), before
    strict = cancel({**ladder, "allow_late": False}, START - timedelta(hours=10))
    assert (strict.allowed, strict.reason) == (False, Reason.DEADLINE_PASSED)


def test_reschedule_follows_the_same_rule() -> None:
    common: dict[str, Any] = {
        "start": START,
        "status": "confirmed",
        "config": OPERATOR,
        "price": Decimal("80.00"),
        "currency": "EUR",
        "recent_changes": 0,
        "reschedule_count": 0,
    }
    early = can_reschedule(at=START - timedelta(days=8), **common)
    late = can_reschedule(at=START - timedelta(hours=30), **common)
    assert (early.reason, early.fee) == (Reason.OK, Decimal("0.00"))
    assert (late.reason, late.fee) == (Reason.LATE_FEE, Decimal("10.00"))


# --- properties ---------------------------------------------------------------------------


@st.composite
def deadline_policies(draw: st.DrawFn) -> dict[str, Any]:
    """hours_before plus tiers from 0 h whose fees do not grow further from the start, in a
    random order (the order a client sends them in must not matter)."""
    extra = draw(st.lists(st.integers(1, 300), max_size=5, unique=True))
    hours = [0, *sorted(extra)]
    kind = draw(st.sampled_from(["fee", "fee_percent"]))
    top = Decimal(100) if kind == "fee_percent" else Decimal(500)
    amounts = draw(
        st.lists(st.decimals(0, top, places=2), min_size=len(hours), max_size=len(hours))
    )
    amounts.sort(reverse=True)
    tiers = [{"min_hours_before": h, kind: a} for h, a in zip(hours, amounts, strict=True)]
    return {
        "hours_before": draw(st.integers(0, 300)),
        "allow_late": True,
        "fee_tiers": draw(st.permutations(tiers)),
    }


seconds_before = st.integers(min_value=1, max_value=400 * 3600)


@given(
    config=deadline_policies(),
    price=st.decimals(0, 100_000, places=2),
    far=seconds_before,
    near=seconds_before,
)
def test_fee_is_zero_before_the_deadline_and_never_falls_as_the_start_nears(
    config: dict[str, Any], price: Decimal, far: int, near: int
) -> None:
    far, near = max(far, near), min(far, near)
    deadline = config["hours_before"] * 3600
    decisions = {
        seconds: cancel(config, START - timedelta(seconds=seconds), price=str(price))
        for seconds in (far, near)
    }
    for seconds, decision in decisions.items():
        assert decision.allowed
        if seconds >= deadline:
            assert (decision.reason, decision.fee) == (Reason.OK, Decimal("0.00"))
        else:
            assert decision.reason == Reason.LATE_FEE
        assert Decimal("0.00") <= decision.fee
        at = START - timedelta(seconds=seconds)
        assert calculate_fee(config, start=START, at=at, price=price) == decision.fee
    assert decisions[far].fee <= decisions[near].fee


# --- the config: shorthand, order, duplicates ----------------------------------------------


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            SHORTHAND,
            {
                "hours_before": "24",
                "allow_late": True,
                "fee_tiers": [{"min_hours_before": "0", "fee": "10.00"}],
            },
        ),
        (
            {"fee_percent": "12.5", "allow_late": True, "hours_before": "36", "window_days": 7},
            {
                "hours_before": "36",
                "allow_late": True,
                "fee_tiers": [{"min_hours_before": "0", "fee_percent": "12.50"}],
                "window_days": 7,
            },
        ),
        (
            {**OPERATOR, "fee_tiers": list(reversed(OPERATOR["fee_tiers"]))},
            {
                "hours_before": "48",
                "allow_late": True,
                "fee_tiers": [
                    {"min_hours_before": "0", "fee": "20.00"},
                    {"min_hours_before": "24", "fee": "10.00"},
                ],
            },
        ),
    ],
)
def test_configs_are_stored_canonical(config: dict[str, Any], expected: dict[str, Any]) -> None:
    normalized = validate_config("service", "cancellation", config)
    assert normalized == expected
    assert list(normalized) == list(expected)
    assert validate_config("company", "cancellation", normalized) == normalized
    through_model = PolicyConfigIn.model_validate(config).configured()
    assert validate_config("branch", "cancellation", through_model) == expected


@pytest.mark.parametrize(
    ("level", "config", "field"),
    [
        ("company", {"fee": 10}, "fee"),  # the shorthand needs its deadline
        ("company", {"hours_before": 24, "fee": 10, "fee_percent": 5}, "fee_percent"),
        ("company", {**SHORTHAND, "fee_tiers": []}, "fee"),
        ("company", {**SHORTHAND, "allow_late": False}, "allow_late"),
        ("company", {"hours_before": 24, "fee": -1}, "fee"),
        ("company", {"hours_before": 24, "fee": "10.001"}, "fee"),
        ("company", {"hours_before": 24, "fee_percent": 100.01}, "fee_percent"),
        ("company", {"hours_before": 24, "fee": None}, "fee"),
        ("staff", {"fee": 10}, "fee"),
        (
            "company",
            {
                "fee_tiers": [
                    {"min_hours_before": 24, "fee": 1},
                    {"min_hours_before": 24.0, "fee": 2},
                ]
            },
            "fee_tiers[1].min_hours_before",
        ),
        (
            "company",
            {
                "fee_tiers": [
                    {"min_hours_before": 0, "fee": 1},
                    {"min_hours_before": 48, "fee": 3},
                    {"min_hours_before": "0.0", "fee_percent": 2},
                ]
            },
            "fee_tiers[2].min_hours_before",
        ),
        ("company", {"fee_tiers": [{"min_hours_before": 0, "fee": -5}]}, "fee_tiers[0].fee"),
        (
            "company",
            {"fee_tiers": [{"min_hours_before": 0, "fee_percent": 101}]},
            "fee_tiers[0].fee_percent",
        ),
        (
            "company",
            {"fee_tiers": [{"min_hours_before": 0, "fee": 1, "fee_percent": 1}]},
            "fee_tiers[0]",
        ),
    ],
)
def test_refusals_name_their_field(level: str, config: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_config(level, "cancellation", config)
    assert caught.value.extra["field"] == field
    if level != "staff":
        with pytest.raises(InvalidInput) as through_model:
            PolicyConfigIn.model_validate(config)
        assert through_model.value.extra["field"] == field


def test_the_model_refuses_unknown_keys_naming_them() -> None:
    with pytest.raises(InvalidInput) as caught:
        PolicyConfigIn.model_validate({"hours_before": 24, "free_from": 48})
    assert caught.value.extra["field"] == "free_from"

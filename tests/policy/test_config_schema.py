"""Policy config validation (every error names its key) and the 4-level merge."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.policy.config_schema import (
    BUSINESS_KEYS,
    DEFAULTS,
    LEVELS,
    POLICY_TYPES,
    PREFERENCE_KEYS,
    merge_levels,
    validate_config,
)
from shared.errors import InvalidInput

TIERS_OK = [{"min_hours_before": 0, "fee": 20}, {"min_hours_before": 24, "fee_percent": 12.5}]


@pytest.mark.parametrize(
    ("policy_type", "config", "expected"),
    [
        ("cancellation", {}, {}),
        ("cancellation", {"hours_before": 24}, {"hours_before": "24"}),
        ("cancellation", {"hours_before": Decimal("24.50")}, {"hours_before": "24.5"}),
        ("cancellation", {"hours_before": 1.5}, {"hours_before": "1.5"}),
        ("cancellation", {"hours_before": "48"}, {"hours_before": "48"}),
        ("cancellation", {"hours_before": Decimal("0.000")}, {"hours_before": "0"}),
        ("cancellation", {"hours_before": Decimal("1E+2")}, {"hours_before": "100"}),
        ("cancellation", {"hours_before": "0.000001"}, {"hours_before": "0.000001"}),
        ("cancellation", {"allow_late": True}, {"allow_late": True}),
        (
            "cancellation",
            {"fee_tiers": TIERS_OK},
            {
                "fee_tiers": [
                    {"min_hours_before": "0", "fee": "20.00"},
                    {"min_hours_before": "24", "fee_percent": "12.50"},
                ]
            },
        ),
        (
            "cancellation",
            {"fee_tiers": [{"min_hours_before": "2.5", "fee": Decimal("19.9")}]},
            {"fee_tiers": [{"min_hours_before": "2.5", "fee": "19.90"}]},
        ),
        (
            "cancellation",
            {"fee_tiers": [{"min_hours_before": 0, "fee": 0.1}]},
            {"fee_tiers": [{"min_hours_before": "0", "fee": "0.10"}]},
        ),
        (
            "cancellation",
            {"fee_tiers": [{"min_hours_before": 0, "fee": "10.500"}]},
            {"fee_tiers": [{"min_hours_before": "0", "fee": "10.50"}]},
        ),
        (
            "cancellation",
            {"fee_tiers": [{"min_hours_before": 0, "fee_percent": 100}]},
            {"fee_tiers": [{"min_hours_before": "0", "fee_percent": "100.00"}]},
        ),
        (  # tiers in any order are stored sorted (ADR 0016)
            "cancellation",
            {"fee_tiers": [{"min_hours_before": 24, "fee": 1}, {"min_hours_before": 12, "fee": 2}]},
            {
                "fee_tiers": [
                    {"min_hours_before": "12", "fee": "2.00"},
                    {"min_hours_before": "24", "fee": "1.00"},
                ]
            },
        ),
        (
            "cancellation",
            {"max_per_window": 3, "window_days": 30},
            {"max_per_window": 3, "window_days": 30},
        ),
        ("cancellation", {"max_per_window": None}, {"max_per_window": None}),
        ("cancellation", {"max_per_window": 0}, {"max_per_window": 0}),
        ("reschedule", {"max_per_appointment": 2}, {"max_per_appointment": 2}),
        ("reschedule", {"max_per_appointment": None}, {"max_per_appointment": None}),
        ("cancellation", {"notify_staff": False}, {"notify_staff": False}),
        ("cancellation", {"staff_note": "x" * 500}, {"staff_note": "x" * 500}),
        (
            "reschedule",
            {"window_days": 7, "hours_before": 12, "allow_late": False},
            {"hours_before": "12", "allow_late": False, "window_days": 7},
        ),
    ],
)
def test_valid_configs_are_normalized(
    policy_type: str, config: dict[str, Any], expected: dict[str, Any]
) -> None:
    normalized = validate_config("company", policy_type, config)
    assert normalized == expected
    assert list(normalized) == list(expected)  # canonical key order
    assert validate_config("company", policy_type, normalized) == normalized  # idempotent


def _no_floats(value: Any) -> bool:
    if isinstance(value, float):
        return False
    if isinstance(value, dict):
        return all(_no_floats(item) for item in value.values())
    if isinstance(value, list):
        return all(_no_floats(item) for item in value)
    return True


_number = st.one_of(
    st.integers(0, 1000),
    st.decimals(0, 1000, places=2),
    st.floats(0, 1000).map(lambda f: round(f, 2)),
)


@given(
    hours=_number,
    percents=st.lists(st.decimals(0, 100, places=2), max_size=4),
    fee=st.decimals(0, 10_000, places=2),
    quota=st.one_of(st.none(), st.integers(0, 50)),
)
def test_normalization_is_idempotent_and_float_free(
    hours: Any, percents: list[Decimal], fee: Decimal, quota: int | None
) -> None:
    tiers: list[dict[str, Any]] = [{"min_hours_before": 0, "fee": fee}]
    tiers += [{"min_hours_before": i + 1, "fee_percent": p} for i, p in enumerate(percents)]
    config = {"hours_before": hours, "fee_tiers": tiers, "max_per_window": quota}
    normalized = validate_config("branch", "reschedule", config)
    assert _no_floats(normalized)
    assert Decimal(normalized["hours_before"]) == Decimal(str(hours))
    assert Decimal(normalized["fee_tiers"][0]["fee"]) == fee
    assert validate_config("service", "reschedule", normalized) == normalized


def _tier(**fields: Any) -> dict[str, Any]:
    return {"fee_tiers": [{"min_hours_before": 0, "fee": 1}, fields]}


@pytest.mark.parametrize(
    ("policy_type", "config", "field"),
    [
        ("cancellation", {"hours_befor": 24}, "hours_befor"),
        ("cancellation", {"fee": 10}, "fee"),
        ("cancellation", {1: 2}, "1"),
        ("cancellation", {"hours_before": True}, "hours_before"),
        ("cancellation", {"hours_before": -1}, "hours_before"),
        ("cancellation", {"hours_before": Decimal("-0.5")}, "hours_before"),
        ("cancellation", {"hours_before": "abc"}, "hours_before"),
        ("cancellation", {"hours_before": "1e3"}, "hours_before"),
        ("cancellation", {"hours_before": "NaN"}, "hours_before"),
        ("cancellation", {"hours_before": float("nan")}, "hours_before"),
        ("cancellation", {"hours_before": float("inf")}, "hours_before"),
        ("cancellation", {"hours_before": Decimal("Infinity")}, "hours_before"),
        ("cancellation", {"hours_before": None}, "hours_before"),
        ("cancellation", {"hours_before": [24]}, "hours_before"),
        ("cancellation", {"hours_before": 87_601}, "hours_before"),
        ("cancellation", {"hours_before": "1.0000001"}, "hours_before"),
        ("cancellation", {"allow_late": 1}, "allow_late"),
        ("cancellation", {"allow_late": "true"}, "allow_late"),
        ("cancellation", {"fee_tiers": {"min_hours_before": 0}}, "fee_tiers"),
        ("cancellation", {"fee_tiers": [5]}, "fee_tiers[0]"),
        ("cancellation", {"fee_tiers": [{"min_hours_before": 0}]}, "fee_tiers[0]"),
        ("cancellation", _tier(min_hours_before=1, fee=1, fee_percent=1), "fee_tiers[1]"),
        ("cancellation", _tier(fee=1), "fee_tiers[1].min_hours_before"),
        ("cancellation", _tier(min_hours_before=1, fee=1, extra=1), "fee_tiers[1].extra"),
        ("cancellation", _tier(min_hours_before=-1, fee=1), "fee_tiers[1].min_hours_before"),
        ("cancellation", _tier(min_hours_before=True, fee=1), "fee_tiers[1].min_hours_before"),
        ("cancellation", _tier(min_hours_before=1, fee=-1), "fee_tiers[1].fee"),
        ("cancellation", _tier(min_hours_before=1, fee=10.001), "fee_tiers[1].fee"),
        ("cancellation", _tier(min_hours_before=1, fee="10.001"), "fee_tiers[1].fee"),
        ("cancellation", _tier(min_hours_before=1, fee=True), "fee_tiers[1].fee"),
        ("cancellation", _tier(min_hours_before=1, fee=None), "fee_tiers[1].fee"),
        ("cancellation", _tier(min_hours_before=1, fee=10**11), "fee_tiers[1].fee"),
        ("cancellation", _tier(min_hours_before=1, fee_percent=100.01), "fee_tiers[1].fee_percent"),
        ("cancellation", _tier(min_hours_before=1, fee_percent=-0.01), "fee_tiers[1].fee_percent"),
        ("cancellation", _tier(min_hours_before=1, fee_percent=12.345), "fee_tiers[1].fee_percent"),
        ("cancellation", _tier(min_hours_before=1, fee_percent=False), "fee_tiers[1].fee_percent"),
        ("cancellation", _tier(min_hours_before=0, fee=2), "fee_tiers[1].min_hours_before"),
        ("reschedule", _tier(min_hours_before="0.0", fee=2), "fee_tiers[1].min_hours_before"),
        (
            "cancellation",
            {
                "fee_tiers": [
                    {"min_hours_before": 24, "fee": 1},
                    {"min_hours_before": "24.0", "fee": 2},
                ]
            },
            "fee_tiers[1].min_hours_before",
        ),
        (
            "cancellation",
            {"fee_tiers": [{"min_hours_before": i, "fee": 1} for i in range(51)]},
            "fee_tiers",
        ),
        ("cancellation", {"max_per_window": -1}, "max_per_window"),
        ("cancellation", {"max_per_window": 1.5}, "max_per_window"),
        ("cancellation", {"max_per_window": 2.0}, "max_per_window"),
        ("cancellation", {"max_per_window": True}, "max_per_window"),
        ("cancellation", {"max_per_window": "3"}, "max_per_window"),
        ("cancellation", {"window_days": 0}, "window_days"),
        ("cancellation", {"window_days": None}, "window_days"),
        ("cancellation", {"window_days": 3_651}, "window_days"),
        ("cancellation", {"max_per_appointment": 2}, "max_per_appointment"),
        ("reschedule", {"max_per_appointment": -1}, "max_per_appointment"),
        ("reschedule", {"max_per_appointment": False}, "max_per_appointment"),
        ("cancellation", {"notify_staff": "yes"}, "notify_staff"),
        ("cancellation", {"notify_staff": None}, "notify_staff"),
        ("cancellation", {"staff_note": 5}, "staff_note"),
        ("cancellation", {"staff_note": "x" * 501}, "staff_note"),
    ],
)
def test_each_error_names_its_key(policy_type: str, config: dict[Any, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_config("company", policy_type, config)
    assert caught.value.extra["field"] == field
    assert caught.value.status == 422


def test_config_must_be_an_object() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_config("company", "cancellation", [])  # type: ignore[arg-type]
    assert caught.value.extra["field"] == "config"


@pytest.mark.parametrize(
    ("level", "policy_type", "field"),
    [("tenant", "cancellation", "level"), ("company", "noshow", "policy_type")],
)
def test_unknown_level_or_policy_type(level: str, policy_type: str, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_config(level, policy_type, {})
    assert caught.value.extra["field"] == field


@pytest.mark.parametrize("policy_type", POLICY_TYPES)
@pytest.mark.parametrize("key", BUSINESS_KEYS)
def test_staff_level_refuses_business_keys(policy_type: str, key: str) -> None:
    value = {"hours_before": 1, "allow_late": True, "fee_tiers": []}.get(key, 1)
    if policy_type == "reschedule" or key != "max_per_appointment":
        validate_config("service", policy_type, {key: value})  # fine one level up
    with pytest.raises(InvalidInput) as caught:
        validate_config("staff", policy_type, {"notify_staff": True, key: value})
    assert caught.value.extra["field"] == key
    assert key in caught.value.detail


@pytest.mark.parametrize("level", LEVELS)
def test_preference_keys_are_allowed_at_every_level(level: str) -> None:
    config = {"staff_note": "Bitte 5 Minuten Puffer", "notify_staff": True}
    assert validate_config(level, "cancellation", config) == {
        "notify_staff": True,
        "staff_note": "Bitte 5 Minuten Puffer",
    }
    assert set(PREFERENCE_KEYS) == set(config)


# --- merge ---------------------------------------------------------------------------------

LEVEL_CONFIGS: dict[str, dict[str, Any]] = {
    "company": {"hours_before": "48", "notify_staff": False, "max_per_window": 3},
    "branch": {"hours_before": "36", "staff_note": "branch"},
    "service": {"hours_before": "12", "fee_tiers": [{"min_hours_before": "0", "fee": "5.00"}]},
    "staff": {"notify_staff": True, "staff_note": "staff"},
}


@pytest.mark.parametrize("policy_type", POLICY_TYPES)
@pytest.mark.parametrize("present", list(itertools.product([False, True], repeat=4)))
def test_merge_every_combination_of_levels(
    present: tuple[bool, bool, bool, bool], policy_type: str
) -> None:
    company, branch, service, staff = present
    configs = {
        level: (LEVEL_CONFIGS[level] if on else None)
        for level, on in zip(LEVELS, present, strict=True)
    }
    expected = dict(DEFAULTS[policy_type])
    origin = dict.fromkeys(expected, "default")

    def expect(key: str, value: Any, level: str) -> None:
        expected[key] = value
        origin[key] = level

    # Written out level by level so the expectation does not re-implement the merge loop.
    if company:
        expect("hours_before", "48", "company")
        expect("notify_staff", False, "company")
        expect("max_per_window", 3, "company")
    if branch:
        expect("hours_before", "36", "branch")
        expect("staff_note", "branch", "branch")
    if service:
        expect("hours_before", "12", "service")
        expect("fee_tiers", [{"min_hours_before": "0", "fee": "5.00"}], "service")
    if staff:
        expect("notify_staff", True, "staff")
        expect("staff_note", "staff", "staff")

    effective, provenance = merge_levels(configs, policy_type=policy_type)
    assert effective == expected
    assert provenance == origin
    assert effective["hours_before"] == (
        "12" if service else "36" if branch else "48" if company else "24"
    )


def test_merge_without_policy_type_has_no_defaults_and_omits_unset_levels() -> None:
    effective, provenance = merge_levels({"branch": {"allow_late": True}})
    assert effective == {"allow_late": True}
    assert provenance == {"allow_late": "branch"}
    assert merge_levels({}) == ({}, {})


def test_merge_explicit_null_lifts_a_quota() -> None:
    effective, provenance = merge_levels(
        {"company": {"max_per_window": 2}, "branch": {"max_per_window": None}},
        policy_type="cancellation",
    )
    assert effective["max_per_window"] is None
    assert provenance["max_per_window"] == "branch"


def test_merge_ignores_business_keys_stored_at_staff_level() -> None:
    effective, provenance = merge_levels(
        {"staff": {"hours_before": "0", "notify_staff": True}}, policy_type="cancellation"
    )
    assert effective["hours_before"] == "24"
    assert provenance["hours_before"] == "default"
    assert provenance["notify_staff"] == "staff"


def test_merge_result_does_not_alias_inputs_or_defaults() -> None:
    tiers = [{"min_hours_before": "0", "fee": "1.00"}]
    effective, _ = merge_levels({"company": {"fee_tiers": tiers}}, policy_type="reschedule")
    effective["fee_tiers"][0]["fee"] = "99.00"
    assert tiers[0]["fee"] == "1.00"
    other, _ = merge_levels({}, policy_type="reschedule")
    other["fee_tiers"].append({"min_hours_before": "0", "fee": "1.00"})
    assert DEFAULTS["reschedule"]["fee_tiers"] == []


def test_merge_refuses_unknown_level() -> None:
    with pytest.raises(InvalidInput) as caught:
        merge_levels({"region": {}})
    assert caught.value.extra["field"] == "level"


def test_defaults_per_policy_type() -> None:
    assert DEFAULTS["cancellation"] == {
        "hours_before": "24",
        "allow_late": False,
        "fee_tiers": [],
        "max_per_window": None,
        "window_days": 30,
    }
    assert DEFAULTS["reschedule"] == {**DEFAULTS["cancellation"], "max_per_appointment": None}
    for policy_type in POLICY_TYPES:
        assert (
            validate_config("company", policy_type, DEFAULTS[policy_type]) == DEFAULTS[policy_type]
        )

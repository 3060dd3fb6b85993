"""Policy config validation and the 4-level merge: pure functions, no I/O.

Stored configs are normalized: money and fractional numbers become decimal strings (never
float), counts stay ints, fee tiers sorted by `min_hours_before`, and the seeds' shorthand
`{"hours_before": 24, "fee": 10}` rewritten to its canonical form (ADR 0016), so
`validate_config` applied to its own output returns it unchanged.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from shared.errors import InvalidInput
from shared.hierarchy.chain import overlay

LEVELS: Final = ("company", "branch", "service", "staff")
POLICY_TYPES: Final = ("cancellation", "reschedule")
DEFAULT_LEVEL: Final = "default"

BUSINESS_KEYS: Final = (
    "hours_before",
    "allow_late",
    "fee_tiers",
    "max_per_window",
    "window_days",
    "max_per_appointment",
)
PREFERENCE_KEYS: Final = ("notify_staff", "staff_note")
RESCHEDULE_ONLY_KEYS: Final = frozenset({"max_per_appointment"})
# The seeds' one-fee form: `fee` or `fee_percent` beside `hours_before` means allow_late with
# that single fee after the deadline. Accepted on input, never stored (ADR 0016).
SHORTHAND_KEYS: Final = ("fee", "fee_percent")

# Bounds keep every value representable: a timedelta, a Numeric(12, 2) money column, a short row.
MAX_HOURS: Final = Decimal(87_600)  # ten years
MAX_HOURS_PLACES: Final = 6  # 1e-6 h = 3.6 ms, so hours convert to whole microseconds
MAX_MONEY: Final = Decimal("9999999999.99")
MAX_WINDOW_DAYS: Final = 3_650
MAX_COUNT: Final = 1_000_000
MAX_TIERS: Final = 50
MAX_NOTE_CHARS: Final = 500
_MAX_NUMBER_TEXT: Final = 40
_NUMBER_TEXT = re.compile(r"[+-]?\d+(\.\d+)?")

DEFAULTS: Final[Mapping[str, Mapping[str, Any]]] = {
    "cancellation": {
        "hours_before": "24",
        "allow_late": False,
        "fee_tiers": [],
        "max_per_window": None,
        "window_days": 30,
    },
    "reschedule": {
        "hours_before": "24",
        "allow_late": False,
        "fee_tiers": [],
        "max_per_window": None,
        "window_days": 30,
        "max_per_appointment": None,
    },
}


def check_level(level: str) -> str:
    if level not in LEVELS:
        raise InvalidInput(f"level must be one of {', '.join(LEVELS)}", field="level")
    return level


def check_policy_type(policy_type: str) -> str:
    if policy_type not in POLICY_TYPES:
        raise InvalidInput(
            f"policy_type must be one of {', '.join(POLICY_TYPES)}", field="policy_type"
        )
    return policy_type


def defaults_for(policy_type: str) -> dict[str, Any]:
    """A fresh copy of the defaults of one policy type (safe to mutate)."""
    check_policy_type(policy_type)
    return copy.deepcopy(dict(DEFAULTS[policy_type]))


def to_decimal(value: object, field: str) -> Decimal:
    """A finite Decimal from an int, float, Decimal or decimal string; bool is not a number."""
    if isinstance(value, bool):
        raise InvalidInput(f"{field} must be a number, not a boolean", field=field)
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"{field} must be a finite number", field=field)
        number = Decimal(repr(value))  # shortest repr: 0.1 -> Decimal("0.1"), not its binary value
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidInput(f"{field} must be a finite number", field=field)
        number = value
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > _MAX_NUMBER_TEXT or not _NUMBER_TEXT.fullmatch(text):
            raise InvalidInput(f"{field} must be a decimal number", field=field)
        try:
            number = Decimal(text)
        except InvalidOperation as exc:  # pragma: no cover - the pattern already excludes this
            raise InvalidInput(f"{field} must be a decimal number", field=field) from exc
    else:
        raise InvalidInput(f"{field} must be a number", field=field)
    return number


def _places(number: Decimal) -> int:
    """Significant decimal places: '10.50' and '10.500' both have 1, '10.00' has 0."""
    exponent = number.normalize().as_tuple().exponent
    assert isinstance(exponent, int)  # finite numbers only reach here
    return max(0, -exponent)


def _plain(number: Decimal) -> str:
    """Shortest plain notation without exponent: Decimal('24.0') -> '24', '1E+2' -> '100'."""
    text = format(number.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def hours(value: object, field: str) -> str:
    number = to_decimal(value, field)
    if number < 0:
        raise InvalidInput(f"{field} must be >= 0", field=field)
    if number > MAX_HOURS:
        raise InvalidInput(f"{field} must be <= {MAX_HOURS}", field=field)
    if _places(number) > MAX_HOURS_PLACES:
        raise InvalidInput(
            f"{field} must have at most {MAX_HOURS_PLACES} decimal places", field=field
        )
    return _plain(number)


def money(value: object, field: str) -> str:
    number = to_decimal(value, field)
    if number < 0:
        raise InvalidInput(f"{field} must be >= 0", field=field)
    if number > MAX_MONEY:
        raise InvalidInput(f"{field} must be <= {MAX_MONEY}", field=field)
    if _places(number) > 2:
        raise InvalidInput(f"{field} must have at most 2 decimal places", field=field)
    return str(number.quantize(Decimal("0.01")))


def percent(value: object, field: str) -> str:
    number = to_decimal(value, field)
    if not Decimal(0) <= number <= Decimal(100):
        raise InvalidInput(f"{field} must be between 0 and 100", field=field)
    if _places(number) > 2:
        raise InvalidInput(f"{field} must have at most 2 decimal places", field=field)
    return str(number.quantize(Decimal("0.01")))


def _boolean(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{field} must be true or false", field=field)
    return value


def _integer(value: object, field: str, *, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} must be an integer", field=field)
    if value < minimum:
        raise InvalidInput(f"{field} must be >= {minimum}", field=field)
    if value > maximum:
        raise InvalidInput(f"{field} must be <= {maximum}", field=field)
    return value


def _count_or_null(value: object, field: str) -> int | None:
    # null is an explicit "no limit": a branch can lift a company-wide quota this way.
    if value is None:
        return None
    return _integer(value, field, minimum=0, maximum=MAX_COUNT)


def _window_days(value: object, field: str) -> int:
    return _integer(value, field, minimum=1, maximum=MAX_WINDOW_DAYS)


def _note(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string", field=field)
    if len(value) > MAX_NOTE_CHARS:
        raise InvalidInput(f"{field} must be at most {MAX_NOTE_CHARS} characters", field=field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800"): JSON allows it, storage does not
        raise InvalidInput(f"{field} must be valid Unicode text", field=field) from None
    return value


def _tier(value: object, field: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{field} must be an object", field=field)
    for key in value:
        if key not in ("min_hours_before", "fee", "fee_percent"):
            raise InvalidInput(f"unknown key {key!r} in {field}", field=f"{field}.{key}")
    if "min_hours_before" not in value:
        raise InvalidInput(
            f"{field}.min_hours_before is required", field=f"{field}.min_hours_before"
        )
    tier = {"min_hours_before": hours(value["min_hours_before"], f"{field}.min_hours_before")}
    if ("fee" in value) == ("fee_percent" in value):
        raise InvalidInput(f"{field} needs exactly one of fee or fee_percent", field=field)
    if "fee" in value:
        tier["fee"] = money(value["fee"], f"{field}.fee")
    else:
        tier["fee_percent"] = percent(value["fee_percent"], f"{field}.fee_percent")
    return tier


def _fee_tiers(value: object, field: str) -> list[dict[str, str]]:
    """The tiers sorted by min_hours_before (any input order); a repeated one is refused."""
    if not isinstance(value, list | tuple):
        raise InvalidInput(f"{field} must be a list", field=field)
    if len(value) > MAX_TIERS:
        raise InvalidInput(f"{field} may hold at most {MAX_TIERS} tiers", field=field)
    seen: set[Decimal] = set()
    tiers: list[dict[str, str]] = []
    for index, item in enumerate(value):
        tier = _tier(item, f"{field}[{index}]")
        at = Decimal(tier["min_hours_before"])
        if at in seen:
            raise InvalidInput(
                f"{field} has two tiers with min_hours_before {tier['min_hours_before']}",
                field=f"{field}[{index}].min_hours_before",
            )
        seen.add(at)
        tiers.append(tier)
    return sorted(tiers, key=lambda tier: Decimal(tier["min_hours_before"]))


_KEYS: Final[dict[str, Callable[[Any, str], Any]]] = {
    "hours_before": hours,
    "allow_late": _boolean,
    "fee_tiers": _fee_tiers,
    "max_per_window": _count_or_null,
    "window_days": _window_days,
    "max_per_appointment": _count_or_null,
    "notify_staff": _boolean,
    "staff_note": _note,
}


def validate_config(level: str, policy_type: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """Check one level's config and return it normalized (canonical key order, no floats)."""
    check_level(level)
    check_policy_type(policy_type)
    if not isinstance(config, Mapping):
        raise InvalidInput("config must be a JSON object", field="config")
    for key in config:
        if not isinstance(key, str) or (key not in _KEYS and key not in SHORTHAND_KEYS):
            raise InvalidInput(f"unknown key {key!r}", field=str(key))
        if key in RESCHEDULE_ONLY_KEYS and policy_type != "reschedule":
            raise InvalidInput(f"{key} applies to reschedule policies only", field=key)
        if level == "staff" and (key in BUSINESS_KEYS or key in SHORTHAND_KEYS):
            raise InvalidInput(
                f"{key} is a business rule; staff level may set only {', '.join(PREFERENCE_KEYS)}",
                field=key,
            )
    return normalize_config(config)


def normalize_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Every key and value checked and normalized, whatever the level and policy type (those
    rules are `validate_config`'s); the shorthand rewritten to allow_late + one tier."""
    if not isinstance(config, Mapping):
        raise InvalidInput("config must be a JSON object", field="config")
    for key in config:
        if not isinstance(key, str) or (key not in _KEYS and key not in SHORTHAND_KEYS):
            raise InvalidInput(f"unknown key {key!r}", field=str(key))
    normalized = {key: check(config[key], key) for key, check in _KEYS.items() if key in config}
    shorthand = [key for key in SHORTHAND_KEYS if key in config]
    if not shorthand:
        return normalized
    return _expand_shorthand(config, normalized, shorthand)


def _expand_shorthand(
    config: Mapping[str, Any], normalized: dict[str, Any], shorthand: list[str]
) -> dict[str, Any]:
    """`{"hours_before": 24, "fee": 10}` -> allow_late true, one tier from 0 h with that fee."""
    key = shorthand[0]
    if len(shorthand) > 1:
        raise InvalidInput("give fee or fee_percent, not both", field="fee_percent")
    if "fee_tiers" in config:
        raise InvalidInput(
            f"{key} is the one-fee shorthand; with fee_tiers put the fee into a tier", field=key
        )
    if "hours_before" not in config:
        raise InvalidInput(
            f"{key} (the one-fee shorthand) needs hours_before, the free-change deadline",
            field=key,
        )
    if config.get("allow_late", True) is not True:
        raise InvalidInput(
            f"{key} charges a fee for late changes, which allow_late false forbids",
            field="allow_late",
        )
    check = money if key == "fee" else percent
    normalized["allow_late"] = True
    normalized["fee_tiers"] = [{"min_hours_before": "0", key: check(config[key], key)}]
    return {name: normalized[name] for name in _KEYS if name in normalized}


def merge_levels(
    configs: Mapping[str, Mapping[str, Any] | None], *, policy_type: str | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Overlay company, branch, service, staff key by key; provenance names each key's level.

    With `policy_type`, that type's DEFAULTS lie under company with provenance "default".
    Business keys at staff level are ignored even if stored (staff may set preferences only).
    """
    for level in configs:
        check_level(level)
    defaults = defaults_for(policy_type) if policy_type is not None else {}
    return overlay(configs, defaults, staff_forbidden=BUSINESS_KEYS, default_level=DEFAULT_LEVEL)

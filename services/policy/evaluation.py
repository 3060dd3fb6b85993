"""Pure policy core: may this appointment be cancelled or rescheduled now, and at what fee.

Everything is a function of its arguments (config, instants, price, counts): no clock, no
database. All time arithmetic is elapsed real time in UTC, so a DST day counts 23 or 25 hours.

`hours_before` is the free-change deadline (ADR 0016): a change at or before it costs nothing;
after it, with `allow_late`, the tier for the remaining hours applies. A config that does not
set `hours_before` keeps the default 24 h deadline for what is allowed and its tiers apply at
every hour (the rule before ADR 0016, which a ladder of tiers alone relies on).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any, Final

from services.policy.config_schema import MAX_MONEY, defaults_for, to_decimal, validate_config
from shared.errors import InvalidInput
from shared.local_time import local_iso

CENT: Final = Decimal("0.01")
ZERO_FEE: Final = Decimal("0.00")
_MICROS_PER_HOUR: Final = 3_600_000_000
MODIFIABLE_STATUSES: Final = frozenset({"confirmed", "pending"})


class Reason(StrEnum):
    OK = "ok"  # allowed, at or before the free-change deadline
    LATE_FEE = "late_fee"  # allowed after the deadline because allow_late is set
    DEADLINE_PASSED = "deadline_passed"
    APPOINTMENT_IN_PAST = "appointment_in_past"
    NOT_MODIFIABLE = "not_modifiable"
    QUOTA_EXCEEDED = "quota_exceeded"
    MAX_RESCHEDULES_REACHED = "max_reschedules_reached"


@dataclass(frozen=True)
class Tier:
    min_hours_before: Decimal
    fee: Decimal | None = None
    fee_percent: Decimal | None = None

    def amount(self, price: Decimal) -> Decimal:
        """This tier's fee for a service of `price`, half-up to cents."""
        if self.fee is not None:
            return self.fee.quantize(CENT, ROUND_HALF_UP)
        assert self.fee_percent is not None
        return (price * self.fee_percent / 100).quantize(CENT, ROUND_HALF_UP)


@dataclass(frozen=True)
class Policy:
    """An effective config, typed; missing keys take the policy type's defaults."""

    policy_type: str
    hours_before: Decimal
    allow_late: bool
    fee_tiers: tuple[Tier, ...]
    max_per_window: int | None
    window_days: int
    max_per_appointment: int | None = None
    # True when the config sets hours_before: nothing is charged at or before the deadline.
    free_before_deadline: bool = True

    @classmethod
    def from_config(cls, policy_type: str, config: Mapping[str, Any]) -> Policy:
        """`config` holds the keys set at some level; missing ones take the defaults."""
        # Every key of an effective config is valid at company level, so this re-check
        # also turns an unvalidated or legacy stored config (the seeds' shorthand, tiers in
        # any order) into the canonical form or a clear InvalidInput.
        configured = validate_config("company", policy_type, config)
        values = {**defaults_for(policy_type), **configured}
        return cls(
            policy_type=policy_type,
            hours_before=Decimal(values["hours_before"]),
            allow_late=values["allow_late"],
            fee_tiers=tuple(
                Tier(
                    min_hours_before=Decimal(tier["min_hours_before"]),
                    fee=Decimal(tier["fee"]) if "fee" in tier else None,
                    fee_percent=Decimal(tier["fee_percent"]) if "fee_percent" in tier else None,
                )
                for tier in values["fee_tiers"]
            ),
            max_per_window=values["max_per_window"],
            window_days=values["window_days"],
            max_per_appointment=values.get("max_per_appointment"),
            free_before_deadline="hours_before" in configured,
        )


@dataclass(frozen=True)
class Quota:
    used: int
    limit: int | None  # None: no quota
    window_days: int


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: Reason
    fee: Decimal  # what the change costs if made now; 0.00 whenever refused
    currency: str
    deadline: datetime  # UTC: the last instant of the free-change period
    hours_before_appointment: Decimal  # elapsed hours from `at` to start, floored to 2 places
    quota: Quota


def as_utc(value: datetime, field: str) -> datetime:
    """An aware datetime converted to UTC; a naive one is refused, never guessed."""
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidInput(f"{field} must be a datetime with a time zone", field=field)
    return value.astimezone(UTC)


def hours_to_timedelta(hours: Decimal) -> timedelta:
    """Elapsed hours as a timedelta, exact to the microsecond."""
    micros = (hours * _MICROS_PER_HOUR).to_integral_value(ROUND_HALF_UP)
    return timedelta(microseconds=int(micros))


def timedelta_to_hours(delta: timedelta) -> Decimal:
    """Floored to 2 places, so a reported 24.00 really means at least 24 hours."""
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return (Decimal(micros) / _MICROS_PER_HOUR).quantize(CENT, ROUND_FLOOR)


def deadline_for(start: datetime, hours_before: Decimal) -> datetime:
    """The free-change deadline: `hours_before` elapsed hours before the start, in UTC."""
    return _minus(as_utc(start, "start"), hours_to_timedelta(hours_before), "start")


def _minus(instant: datetime, delta: timedelta, field: str) -> datetime:
    try:
        return instant - delta
    except OverflowError as exc:  # an instant near year 1: refuse it, never answer 500
        raise InvalidInput(f"{field} is out of range", field=field) from exc


def count_in_window(changes: Iterable[datetime], *, at: datetime, window_days: int) -> int:
    """Changes less than window_days x 24 h old at `at`.

    Changes recorded after `at` count too: under clock skew between replicas the quota
    errs towards refusing rather than letting a change slip past it.
    """
    oldest_excluded = _minus(as_utc(at, "at"), timedelta(hours=24 * window_days), "at")
    return sum(1 for change in changes if as_utc(change, "recent_changes") > oldest_excluded)


def select_tier(tiers: Iterable[Tier], time_before: timedelta) -> Tier | None:
    """The tier with the largest min_hours_before that is not above the time before start."""
    chosen: Tier | None = None
    for tier in tiers:
        if hours_to_timedelta(tier.min_hours_before) <= time_before and (
            chosen is None or tier.min_hours_before > chosen.min_hours_before
        ):
            chosen = tier
    return chosen


def _price(price: Decimal | int) -> Decimal:
    number = to_decimal(price, "price")
    if not ZERO_FEE <= number <= MAX_MONEY:
        raise InvalidInput(f"price must be between 0 and {MAX_MONEY}", field="price")
    return number


def _policy(policy_type: str, config: Mapping[str, Any] | Policy) -> Policy:
    if isinstance(config, Policy):
        if config.policy_type != policy_type:
            raise InvalidInput(
                f"a {config.policy_type} policy cannot decide a {policy_type}",
                field="policy_type",
            )
        return config
    return Policy.from_config(policy_type, config)


def _fee(policy: Policy, time_before: timedelta, price: Decimal) -> Decimal:
    """Nothing at or before the free-change deadline (when set); after it, the tier's fee."""
    if policy.free_before_deadline and time_before >= hours_to_timedelta(policy.hours_before):
        return ZERO_FEE
    tier = select_tier(policy.fee_tiers, time_before)
    return ZERO_FEE if tier is None else tier.amount(price)


def calculate_fee(
    config: Mapping[str, Any] | Policy,
    *,
    start: datetime,
    at: datetime,
    price: Decimal | int,
    policy_type: str = "cancellation",
) -> Decimal:
    """What a change at `at` costs, half-up to cents: 0.00 at or before the free-change
    deadline (when the config sets one) or when no tier applies, else the tier's fee."""
    policy = config if isinstance(config, Policy) else Policy.from_config(policy_type, config)
    time_before = as_utc(start, "start") - as_utc(at, "at")
    return _fee(policy, time_before, _price(price))


def _used(recent_changes: Iterable[datetime] | int, *, at: datetime, window_days: int) -> int:
    if isinstance(recent_changes, bool):
        raise InvalidInput("recent_changes must be a count or instants", field="recent_changes")
    if isinstance(recent_changes, int):
        if recent_changes < 0:
            raise InvalidInput("recent_changes must be >= 0", field="recent_changes")
        return recent_changes
    return count_in_window(recent_changes, at=at, window_days=window_days)


def _decide(
    policy: Policy,
    *,
    start: datetime,
    status: str,
    at: datetime,
    price: Decimal | int,
    currency: str,
    recent_changes: Iterable[datetime] | int,
    reschedule_count: int | None,
) -> Decision:
    start, at = as_utc(start, "start"), as_utc(at, "at")
    amount = _price(price)
    time_before = start - at
    deadline = deadline_for(start, policy.hours_before)
    quota = Quota(
        used=_used(recent_changes, at=at, window_days=policy.window_days),
        limit=policy.max_per_window,
        window_days=policy.window_days,
    )

    def decision(allowed: bool, reason: Reason, fee: Decimal = ZERO_FEE) -> Decision:
        return Decision(
            allowed=allowed,
            reason=reason,
            fee=fee,
            currency=currency,
            deadline=deadline,
            hours_before_appointment=timedelta_to_hours(time_before),
            quota=quota,
        )

    if status not in MODIFIABLE_STATUSES:
        return decision(False, Reason.NOT_MODIFIABLE)
    if at >= start:
        return decision(False, Reason.APPOINTMENT_IN_PAST)
    if quota.limit is not None and quota.used >= quota.limit:
        return decision(False, Reason.QUOTA_EXCEEDED)
    if (
        reschedule_count is not None
        and policy.max_per_appointment is not None
        and reschedule_count >= policy.max_per_appointment
    ):
        return decision(False, Reason.MAX_RESCHEDULES_REACHED)
    if at <= deadline:
        return decision(True, Reason.OK, _fee(policy, time_before, amount))
    if policy.allow_late:
        return decision(True, Reason.LATE_FEE, _fee(policy, time_before, amount))
    return decision(False, Reason.DEADLINE_PASSED)


def can_cancel(
    *,
    start: datetime,
    status: str,
    at: datetime,
    config: Mapping[str, Any] | Policy,
    price: Decimal | int,
    currency: str,
    recent_changes: Iterable[datetime] | int,
) -> Decision:
    """May the appointment be cancelled at `at`; `recent_changes`: the customer's cancellations."""
    return _decide(
        _policy("cancellation", config),
        start=start,
        status=status,
        at=at,
        price=price,
        currency=currency,
        recent_changes=recent_changes,
        reschedule_count=None,
    )


def can_reschedule(
    *,
    start: datetime,
    status: str,
    at: datetime,
    config: Mapping[str, Any] | Policy,
    price: Decimal | int,
    currency: str,
    recent_changes: Iterable[datetime] | int,
    reschedule_count: int,
) -> Decision:
    """May the appointment be moved at `at`; `reschedule_count`: its own earlier moves."""
    if isinstance(reschedule_count, bool) or not isinstance(reschedule_count, int):
        raise InvalidInput("reschedule_count must be an integer", field="reschedule_count")
    if reschedule_count < 0:
        raise InvalidInput("reschedule_count must be >= 0", field="reschedule_count")
    return _decide(
        _policy("reschedule", config),
        start=start,
        status=status,
        at=at,
        price=price,
        currency=currency,
        recent_changes=recent_changes,
        reschedule_count=reschedule_count,
    )


def deadline_local_iso(deadline_utc: datetime, tz_name: str) -> str:
    """The deadline as ISO 8601 with the offset of `tz_name` (the branch's zone) at that instant."""
    deadline = as_utc(deadline_utc, "deadline")
    try:
        return local_iso(deadline, tz_name)
    except (ValueError, OSError, TypeError) as exc:  # zone_of refuses an unknown zone
        raise InvalidInput(f"unknown time zone {tz_name!r}", field="timezone") from exc

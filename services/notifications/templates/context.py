"""The render context: each event's template variables, formatted as text in the message's
language and the branch's time zone (pure). Templates only arrange these strings."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from services.notifications.catalog.event_types import (
    APPOINTMENT_EVENTS,
    CALLBACK_EVENTS,
    EVENT_TYPES,
)
from services.notifications.templates.budget import TemplateError
from services.notifications.templates.locale import (
    format_date,
    format_instant,
    format_money,
    format_time,
    normalize_language,
)
from shared.errors import InvalidInput

DEFAULT_TIMEZONE: Final = "Europe/Berlin"
DEFAULT_CURRENCY: Final = "EUR"

_COMMON: Final = frozenset({"company", "language"})
_APPOINTMENT: Final = _COMMON | frozenset(
    [
        "customer_name",
        "service",
        "staff",
        "branch",
        "branch_address",
        "branch_phone",
        "start",
        "date",
        "time",
        "end_time",
        "duration_minutes",
        "price",
        "appointment_id",
        "reference",
    ]
)
_CALLBACK: Final = _COMMON | frozenset(
    [
        "customer_name",
        "callback_phone",
        "callback_reason",
        "preferred_time",
        "branch",
        "due",
        "assigned_to",
        "escalation_level",
        "callback_id",
    ]
)
_EXTRA: Final[Mapping[str, frozenset[str]]] = {
    "booking_rescheduled": frozenset({"old_start"}),
    "booking_cancelled": frozenset({"fee", "reason"}),
    "cancellation_fee_charged": frozenset({"fee", "deadline"}),  # deadline: the one missed
    "booking_sync_failed": frozenset({"error"}),
    "modification_quota_exceeded": frozenset({"quota_limit", "window_days"}),
}
VARIABLES: Final[Mapping[str, frozenset[str]]] = {
    **{event: _APPOINTMENT | _EXTRA.get(event, frozenset()) for event in APPOINTMENT_EVENTS},
    **{event: _CALLBACK for event in CALLBACK_EVENTS},
}

# Raw keys passed through as text (the rest are instants and amounts, formatted below).
_TEXT_KEYS: Final = [
    "company",
    "customer_name",
    "service",
    "staff",
    "branch",
    "branch_address",
    "branch_phone",
    "reason",
    "error",
    "appointment_id",
    "reference",
    "callback_id",
    "callback_phone",
    "callback_reason",
    "preferred_time",
    "assigned_to",
    "quota_limit",
    "window_days",
    "escalation_level",
]


def check_event(event_type: str) -> None:
    """InvalidInput (naming the field) for an unknown event type."""
    if event_type not in EVENT_TYPES:
        raise InvalidInput(f"Unknown event type '{event_type}'.", field="event_type")


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _instant(raw: Mapping[str, Any], key: str) -> datetime | None:
    value = raw.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            value = None
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise TemplateError(f"'{key}' must be a timezone-aware instant.", field=key)
    return value


def _amount(raw: Mapping[str, Any], key: str) -> Decimal | None:
    value = raw.get(key)
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite():
        raise TemplateError(f"'{key}' must be an amount of money.", field=key)
    return amount


def build_context(event_type: str, language: str, raw: Mapping[str, Any]) -> dict[str, str]:
    """The event's VARIABLES as text in `language` (de/en, else de); missing data is ""."""
    check_event(event_type)
    language = normalize_language(language)
    zone = _text(raw.get("timezone")) or DEFAULT_TIMEZONE
    currency = _text(raw.get("currency")) or DEFAULT_CURRENCY
    values = {key: _text(raw.get(key)) for key in _TEXT_KEYS}
    values["language"] = language
    starts_at, ends_at = _instant(raw, "starts_at"), _instant(raw, "ends_at")
    old_starts_at, due_at = _instant(raw, "old_starts_at"), _instant(raw, "due_at")
    deadline_at = _instant(raw, "deadline_at")
    price, fee = _amount(raw, "price"), _amount(raw, "fee")
    try:
        if starts_at is not None:
            values["start"] = format_instant(starts_at, zone, language)
            values["date"] = format_date(starts_at, zone, language)
            values["time"] = format_time(starts_at, zone, language)
        if ends_at is not None:
            values["end_time"] = format_time(ends_at, zone, language)
        if starts_at is not None and ends_at is not None:
            values["duration_minutes"] = str(int((ends_at - starts_at).total_seconds() // 60))
        if old_starts_at is not None:
            values["old_start"] = format_instant(old_starts_at, zone, language)
        if due_at is not None:
            values["due"] = format_instant(due_at, zone, language)
        if deadline_at is not None:
            values["deadline"] = format_instant(deadline_at, zone, language)
    except ValueError as exc:  # an unknown time zone name
        raise TemplateError(str(exc), field="timezone") from exc
    if price is not None:
        values["price"] = format_money(price, currency, language)
    # A zero fee is no fee: "" lets a template say `{% if fee %}`.
    if fee is not None and fee != 0:
        values["fee"] = format_money(fee, currency, language)
    return {name: values.get(name, "") for name in VARIABLES[event_type]}

"""Notification config validation: pure functions, no I/O.

One stored config is one level's view of one (event type, channel): only the keys the level
sets, normalized, so validating a stored config again returns it unchanged. Keys:

- business (company, branch, service): `enabled` (bool), `recipients` (a list of "customer",
  "staff", "branch" and `{"address": ...}`: an email address on the email channel, a phone
  number on sms/whatsapp), `template_override` (a template body, validated like a saved
  template), `reminder_offset_minutes` (reminder events only, 1 min to 7 days);
- preferences (every level, and the only keys staff may set): `notify_staff` (does the staff
  member hear of this event on this channel) and `language` ("de" or "en", for messages to
  staff).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from email_validator import EmailNotValidError, validate_email

from services.notifications.catalog.event_types import (
    CHANNELS,
    EVENT_TYPES,
    NOTIFICATION_LANGUAGES,
    REMINDER_EVENTS,
)
from services.notifications.templates.validation import validate_template
from shared.errors import AppError, InvalidInput
from shared.hierarchy.chain import LEVELS
from shared.phones import normalize_phone

BUSINESS_KEYS: Final = ("enabled", "recipients", "template_override", "reminder_offset_minutes")
PREFERENCE_KEYS: Final = ("notify_staff", "language")
RECIPIENT_ROLES: Final = ("customer", "staff", "branch")
MAX_RECIPIENTS: Final = 20
MAX_REMINDER_MINUTES: Final = 7 * 24 * 60


def check_event_type(event_type: str) -> None:
    if event_type not in EVENT_TYPES:
        raise InvalidInput(f"Unknown event type {event_type!r}.", field="event_type")


def check_channel(channel: str) -> None:
    if channel not in CHANNELS:
        raise InvalidInput(
            f"channel must be one of {', '.join(CHANNELS)}, not {channel!r}.", field="channel"
        )


def check_scope(level: str, event_type: str, channel: str) -> None:
    if level not in LEVELS:
        raise InvalidInput(f"level must be one of {', '.join(LEVELS)}.", field="level")
    check_event_type(event_type)
    check_channel(channel)


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{key} must be true or false.", field=key)
    return value


def normalize_address(channel: str, value: Any, field: str) -> str:
    """A fixed recipient's address, normalized for its channel (422 naming `field`)."""
    if not isinstance(value, str) or not value.strip() or len(value) > 255:
        raise InvalidInput(
            "address must be a non-empty string of at most 255 characters.", field=field
        )
    if channel == "email":
        try:
            return str(validate_email(value.strip(), check_deliverability=False).normalized)
        except EmailNotValidError as exc:
            raise InvalidInput(f"Not a valid email address: {exc}", field=field) from exc
    try:
        return normalize_phone(value)
    except ValueError as exc:
        raise InvalidInput(f"Not a valid phone number: {exc}", field=field) from exc


def _recipients(channel: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidInput("recipients must be a list.", field="recipients")
    if len(value) > MAX_RECIPIENTS:
        raise InvalidInput(f"At most {MAX_RECIPIENTS} recipients.", field="recipients")
    normalized: list[Any] = []
    for index, item in enumerate(value):
        field = f"recipients[{index}]"
        if isinstance(item, str):
            if item not in RECIPIENT_ROLES:
                raise InvalidInput(
                    f"A recipient is one of {', '.join(RECIPIENT_ROLES)} or "
                    '{"address": ...}, not ' + repr(item) + ".",
                    field=field,
                )
            entry: Any = item
        elif isinstance(item, dict):
            if set(item) != {"address"}:
                raise InvalidInput('A fixed recipient is {"address": ...}.', field=field)
            entry = {"address": normalize_address(channel, item["address"], f"{field}.address")}
        else:
            raise InvalidInput("A recipient is a role name or an address object.", field=field)
        if entry not in normalized:
            normalized.append(entry)
    return normalized


def _template(event_type: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(
            "template_override must be a template text or null.", field="template_override"
        )
    try:
        validate_template(event_type, value)
    except AppError as exc:
        raise InvalidInput(
            f"template_override: {exc.detail}", field="template_override", **_line(exc)
        ) from exc
    return value


def _line(exc: AppError) -> dict[str, Any]:
    line = exc.extra.get("line")
    return {} if line is None else {"line": line}


def _reminder_minutes(event_type: str, value: Any) -> int:
    key = "reminder_offset_minutes"
    if event_type not in REMINDER_EVENTS:
        raise InvalidInput(f"{key} applies to reminder events only.", field=key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{key} must be a whole number of minutes.", field=key)
    if not 1 <= value <= MAX_REMINDER_MINUTES:
        raise InvalidInput(f"{key} must be between 1 and {MAX_REMINDER_MINUTES}.", field=key)
    return value


def validate_config(
    level: str, event_type: str, channel: str, config: Mapping[str, Any]
) -> dict[str, Any]:
    """The normalized config of one level, or InvalidInput naming the offending key.

    A dict: the config is a JSON document stored as it is (its keys are the data)."""
    check_scope(level, event_type, channel)
    if not isinstance(config, Mapping):
        raise InvalidInput("The config must be a JSON object.", field="config")
    normalized: dict[str, Any] = {}
    for key, value in config.items():
        if key not in BUSINESS_KEYS and key not in PREFERENCE_KEYS:
            known = ", ".join((*BUSINESS_KEYS, *PREFERENCE_KEYS))
            raise InvalidInput(f"Unknown key {key!r} (known: {known}).", field=key)
        if level == "staff" and key in BUSINESS_KEYS:
            raise InvalidInput(
                f"{key} is a business setting; staff may set only {', '.join(PREFERENCE_KEYS)}.",
                field=key,
            )
        if key in ("enabled", "notify_staff"):
            normalized[key] = _bool(value, key)
        elif key == "recipients":
            normalized[key] = _recipients(channel, value)
        elif key == "template_override":
            normalized[key] = _template(event_type, value)
        elif key == "reminder_offset_minutes":
            normalized[key] = _reminder_minutes(event_type, value)
        elif key == "language":
            if value not in NOTIFICATION_LANGUAGES:
                raise InvalidInput(
                    f"language must be one of {', '.join(NOTIFICATION_LANGUAGES)}.", field=key
                )
            normalized[key] = value
    return normalized

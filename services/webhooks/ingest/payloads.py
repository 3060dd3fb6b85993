"""What a webhook body must look like before it is stored, and the key that dedupes it.

Parsing is strict (a JSON object; finite numbers; no lone surrogates; nesting at most
MAX_DEPTH), so whatever is stored can be serialized back and read by the handlers. The schema
checks cover only the fields the handlers use, and only their types: unknown fields and unknown
event types are accepted (the processor records those `ignored`). Cal.com never retries a
delivery we refuse, so refusing is kept for bodies that are really not Cal.com's.

Dedupe keys (`webhook_events.event_id`, UNIQUE together with `source`):

* Retell: `f"{event}:{call.call_id}"`, as Retell's docs advise (it redelivers on timeouts).
* Cal.com sends no delivery id, and its `createdAt` is the send time (it changes between
  otherwise identical deliveries), so the key is derived from what identifies the change:
  `sha256_hex(json.dumps([company_id, triggerEvent, booking_uid, start, reschedule_uid,
  extra], separators=(",", ":")))` where
  - `booking_uid` is `payload.uid` (`payload.bookingUid` for BOOKING_NO_SHOW_UPDATED; the
    top-level `uid` in the flat MEETING_STARTED/MEETING_ENDED shape, Cal.com issue #12494);
  - `start` is `startTime` normalized to UTC (`2024-01-04T10:00:00Z`), so "+00:00", "Z" and
    ".000Z" spellings of one instant give one key; "" when absent;
  - `reschedule_uid` is `rescheduleUid`, else `fromReschedule`, else "";
  - `extra` is, for BOOKING_NO_SHOW_UPDATED, the attendees' `[email, noShow]` pairs sorted
    (marking and unmarking are different events); for a body without any booking uid (the
    test ping, trigger events we do not know) the sha256 of the body without `createdAt`, so
    two different uid-less events never collide; else "".
  The company id is part of the key: two companies' Cal.com accounts never share events.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict

from shared.errors import BadRequest
from shared.integrations.retell.auth import well_formed
from shared.local_time import local_iso

MAX_DEPTH = 32  # Cal.com and Retell bodies nest 5-6 levels; deeper is not theirs
MAX_UID = 100  # appointments.calcom_booking_uid
MAX_CALL_ID = 100  # calls.retell_call_id
MAX_EVENT_TYPE = 100  # webhook_events.event_type
MAX_RETELL_EVENT = 50

PING = "PING"
NO_SHOW = "BOOKING_NO_SHOW_UPDATED"
# Booking events whose handlers need the booking uid (and, for those that place a booking
# in time, its start and end).
BOOKING_EVENTS = frozenset(
    {
        "BOOKING_CREATED",
        "BOOKING_CANCELLED",
        "BOOKING_RESCHEDULED",
        "BOOKING_REQUESTED",
        "BOOKING_REJECTED",
        "MEETING_STARTED",
        "MEETING_ENDED",
    }
)
TIMED_EVENTS = frozenset({"BOOKING_CREATED", "BOOKING_RESCHEDULED", "BOOKING_REQUESTED"})


class InvalidPayload(BadRequest):
    """400: the body is not JSON, or not the source's schema; `errors` names each culprit."""

    code, title = "invalid_payload", "Invalid webhook payload"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def parse_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or InvalidPayload (a dict: its shape is the sender's, and the
    checks below read it field by field)."""
    try:
        text = raw.decode("utf-8")
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
        raise InvalidPayload("The body is not valid UTF-8 JSON.") from None
    if not isinstance(value, dict):
        raise InvalidPayload("The body must be a JSON object.")
    if not well_formed(value, MAX_DEPTH):
        raise InvalidPayload(
            f"The body nests deeper than {MAX_DEPTH} levels or holds text that is not Unicode."
        )
    return value


class FieldError(TypedDict):
    """One entry of the problem's `errors` list."""

    field: str
    message: str


class _Errors:
    """Collects every schema violation, so one answer names them all."""

    def __init__(self) -> None:
        self.items: list[FieldError] = []

    def add(self, field: str, message: str) -> None:
        self.items.append(FieldError(field=field, message=message))

    def raise_if_any(self, source: str) -> None:
        if self.items:
            fields = ", ".join(dict.fromkeys(e["field"] for e in self.items))
            raise InvalidPayload(
                f"The {source} payload does not match its schema: {fields}.", errors=self.items
            )


def _text(
    body: dict[str, Any],
    key: str,
    path: str,
    errors: _Errors,
    *,
    required: bool = False,
    max_length: int | None = None,
) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            errors.add(path, "is required")
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        errors.add(path, "must be a non-empty string" if required else "must be a string")
        return None
    if max_length is not None and len(value) > max_length:
        errors.add(path, f"must be at most {max_length} characters")
        return None
    return value


def _instant(body: dict[str, Any], key: str, path: str, errors: _Errors, required: bool) -> str:
    """`body[key]` as a normalized UTC instant ("" when absent and optional)."""
    value = body.get(key)
    if value is None:
        if required:
            errors.add(path, "is required")
        return ""
    parsed = None
    if isinstance(value, str) and len(value) <= 40:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
    if parsed is None or parsed.utcoffset() is None:
        errors.add(path, "must be an ISO 8601 instant with an offset")
        return ""
    try:
        return local_iso(parsed, UTC).replace("+00:00", "Z")
    except OverflowError:  # year 1 with a positive offset
        errors.add(path, "is out of range")
        return ""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class CalcomEvent:
    trigger: str
    booking_uid: str | None
    is_ping: bool
    dedupe_key: str


def _check_booking_fields(
    booking: dict[str, Any], prefix: str, trigger: str, errors: _Errors
) -> tuple[str | None, str, str]:
    """Type-check the fields handlers read; returns (uid, normalized start, reschedule uid)."""
    uid_key = "bookingUid" if trigger == NO_SHOW else "uid"
    uid = _text(
        booking,
        uid_key,
        prefix + uid_key,
        errors,
        required=trigger in BOOKING_EVENTS or trigger == NO_SHOW,
        max_length=MAX_UID,
    )
    timed = trigger in TIMED_EVENTS
    start = _instant(booking, "startTime", prefix + "startTime", errors, timed)
    _instant(booking, "endTime", prefix + "endTime", errors, timed)
    event_type_id = booking.get("eventTypeId")
    if event_type_id is not None and not (_is_int(event_type_id) and 0 <= event_type_id < 2**31):
        errors.add(prefix + "eventTypeId", "must be an integer or null")
    reschedule = None
    for key in ("rescheduleUid", "fromReschedule"):
        value = _text(booking, key, prefix + key, errors, max_length=MAX_UID)
        reschedule = reschedule or value
    organizer = booking.get("organizer")
    if organizer is not None:
        if not isinstance(organizer, dict):
            errors.add(prefix + "organizer", "must be an object")
        else:
            _text(organizer, "email", prefix + "organizer.email", errors, max_length=255)
    attendees = booking.get("attendees")
    if attendees is not None:
        if not isinstance(attendees, list):
            errors.add(prefix + "attendees", "must be a list of objects")
        else:
            for index, attendee in enumerate(attendees):
                where = f"{prefix}attendees[{index}]"
                if not isinstance(attendee, dict):
                    errors.add(where, "must be an object")
                    continue
                _text(attendee, "email", where + ".email", errors, max_length=255)
                _text(attendee, "name", where + ".name", errors, max_length=255)
                no_show = attendee.get("noShow")
                if no_show is not None and not isinstance(no_show, bool):
                    errors.add(where + ".noShow", "must be a boolean")
    return uid, start, reschedule or ""


def _digest(material: object) -> str:
    canonical = json.dumps(material, separators=(",", ":"), sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _no_show_pairs(booking: dict[str, Any]) -> list[list[Any]]:
    attendees = booking.get("attendees") or []
    return sorted(
        [[a.get("email") or "", bool(a.get("noShow"))] for a in attendees],
        key=lambda pair: (pair[0], pair[1]),
    )


def validate_calcom(company_id: str, body: dict[str, Any]) -> CalcomEvent:
    """Check a Cal.com webhook body (nested `payload` or the flat MEETING_* shape) and derive
    its dedupe key; InvalidPayload names every field that is wrong."""
    errors = _Errors()
    trigger = _text(
        body, "triggerEvent", "triggerEvent", errors, required=True, max_length=MAX_EVENT_TYPE
    )
    errors.raise_if_any("Cal.com")
    assert trigger is not None
    if "payload" in body:
        booking = body["payload"]
        if not isinstance(booking, dict):
            errors.add("payload", "must be an object")
            errors.raise_if_any("Cal.com")
        prefix = "payload."
    else:
        booking = body  # the flat shape: booking fields at the top level
        prefix = ""
    is_ping = trigger == PING or (booking.get("type") == "Test" and "uid" not in booking)
    # A ping carries no booking uid: check it like an event that needs none.
    schema_trigger = PING if is_ping else trigger
    uid, start, reschedule = _check_booking_fields(booking, prefix, schema_trigger, errors)
    errors.raise_if_any("Cal.com")
    extra: object = ""
    if trigger == NO_SHOW:
        extra = _no_show_pairs(booking)
    elif not uid:
        extra = _digest({k: v for k, v in body.items() if k != "createdAt"})
    key = _digest([company_id, trigger, uid or "", start, reschedule, extra])
    return CalcomEvent(trigger=trigger, booking_uid=uid, is_ping=is_ping, dedupe_key=key)


@dataclass(frozen=True)
class RetellEvent:
    event: str
    call_id: str
    dedupe_key: str


def validate_retell(body: dict[str, Any]) -> RetellEvent:
    """Check a Retell call-event body (`{"event": ..., "call": {...}}`) and derive its key."""
    errors = _Errors()
    event = _text(body, "event", "event", errors, required=True, max_length=MAX_RETELL_EVENT)
    call = body.get("call")
    call_id = None
    if not isinstance(call, dict):
        errors.add("call", "is required and must be an object")
    else:
        call_id = _text(
            call, "call_id", "call.call_id", errors, required=True, max_length=MAX_CALL_ID
        )
        for key in ("agent_id", "from_number", "to_number", "direction", "call_status"):
            _text(call, key, f"call.{key}", errors, max_length=100)
        for key in ("transcript", "disconnection_reason"):
            _text(call, key, f"call.{key}", errors)
        for key in ("start_timestamp", "end_timestamp", "duration_ms"):
            value = call.get(key)
            if value is not None and not (_is_int(value) and 0 <= value < 2**63):
                errors.add(f"call.{key}", "must be a non-negative integer (ms)")
        analysis = call.get("call_analysis")
        if analysis is not None and not isinstance(analysis, dict):
            errors.add("call.call_analysis", "must be an object")
    errors.raise_if_any("Retell")
    assert event is not None and call_id is not None
    return RetellEvent(event=event, call_id=call_id, dedupe_key=f"{event}:{call_id}")

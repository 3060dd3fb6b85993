"""Reading Cal.com API v2 answers defensively: the booking (`BookingOutput_2024_08_13`), the
`{"status": "success", "data": ...}` envelope and error bodies. A surprise is a CalcomError,
never a KeyError.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from shared.fields import utc_instant
from shared.integrations.calcom.errors import CalcomError

# A JSON object as Cal.com sends or takes it (request and answer bodies): its shape is the
# vendor's, read defensively here and stored as sent in the call log.
JsonObject = dict[str, Any]


def parse_instant(value: Any, field: str) -> datetime:
    """An ISO 8601 instant as UTC-aware datetime; Cal.com writes `Z`, naive is refused."""
    try:
        return utc_instant(value)
    except ValueError as exc:
        raise CalcomError(f"booking field {field!r} {exc}") from None


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def _opt_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


@dataclass(frozen=True)
class CalcomBooking:
    """The fields of a Cal.com booking this system uses; everything else is ignored."""

    uid: str
    id: int | None
    status: str
    start: datetime
    end: datetime
    event_type_id: int | None
    host_emails: tuple[str, ...]
    attendee_name: str | None
    attendee_email: str | None
    attendee_phone: str | None
    attendee_time_zone: str | None
    metadata: dict[str, str]
    rescheduled_from_uid: str | None
    rescheduled_to_uid: str | None
    cancellation_reason: str | None
    updated_at: datetime | None

    @property
    def appointment_id(self) -> str | None:
        """Our appointment id, which every booking we create carries in its metadata."""
        return self.metadata.get("appointment_id")

    @classmethod
    def from_api(cls, data: JsonObject) -> CalcomBooking:
        """Read one booking; a malformed one raises CalcomError, never KeyError/TypeError."""
        if not isinstance(data, dict):
            raise CalcomError("booking is not a JSON object")
        uid = data.get("uid")
        if not isinstance(uid, str) or not uid:
            raise CalcomError("booking has no uid")
        status = data.get("status")
        if not isinstance(status, str) or not status:
            raise CalcomError("booking has no status")
        event_type = data.get("eventType")
        event_type_id = _opt_int(data.get("eventTypeId"))
        if event_type_id is None and isinstance(event_type, dict):
            event_type_id = _opt_int(event_type.get("id"))
        hosts = data.get("hosts")
        host_emails = tuple(
            h["email"]
            for h in (hosts if isinstance(hosts, list) else [])
            if isinstance(h, dict) and isinstance(h.get("email"), str)
        )
        attendees = data.get("attendees")
        first: JsonObject = {}
        if isinstance(attendees, list) and attendees and isinstance(attendees[0], dict):
            first = attendees[0]
        raw_meta = data.get("metadata")
        metadata = (
            {str(k): str(v) for k, v in raw_meta.items() if v is not None}
            if isinstance(raw_meta, dict)
            else {}
        )
        updated = data.get("updatedAt")
        return cls(
            uid=uid,
            id=_opt_int(data.get("id")),
            status=status.lower(),
            start=parse_instant(data.get("start"), "start"),
            end=parse_instant(data.get("end"), "end"),
            event_type_id=event_type_id,
            host_emails=host_emails,
            attendee_name=_opt_str(first.get("name")),
            attendee_email=_opt_str(first.get("email")),
            attendee_phone=_opt_str(first.get("phoneNumber")),
            attendee_time_zone=_opt_str(first.get("timeZone")),
            metadata=metadata,
            rescheduled_from_uid=_opt_str(data.get("rescheduledFromUid")),
            rescheduled_to_uid=_opt_str(data.get("rescheduledToUid")),
            cancellation_reason=_opt_str(data.get("cancellationReason")),
            updated_at=parse_instant(updated, "updatedAt") if updated is not None else None,
        )


def iso_z(instant: datetime) -> str:
    """An aware instant as Cal.com wants it: ISO 8601 in UTC with `Z`."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("naive datetime given where an instant is required")
    text = instant.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def error_message(body: JsonObject | None, fallback: str) -> str:
    """Cal.com's `{"status":"error","error":{"message":...}}`, or NestJS's `{"message":...}`."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(body.get("message"), str):
            return str(body["message"])
        if isinstance(error, str):
            return error
    return fallback


def json_object(response: httpx.Response) -> JsonObject | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def success_data(body: JsonObject | None, endpoint: str) -> Any:
    if body is None or body.get("status") != "success" or "data" not in body:
        raise CalcomError(f"unexpected answer shape from {endpoint}")
    return body["data"]


def one_booking(data: Any, endpoint: str, uid: str | None = None) -> CalcomBooking:
    """A single booking from `data`; recurring answers are arrays: pick ours by uid."""
    if isinstance(data, list):
        matches = [item for item in data if isinstance(item, dict) and item.get("uid") == uid]
        if uid is None or len(matches) != 1:
            raise CalcomError(f"{endpoint} answered a list where one booking was expected")
        data = matches[0]
    if not isinstance(data, dict):
        raise CalcomError(f"{endpoint} answered no booking object")
    return CalcomBooking.from_api(data)

"""Cal.com webhook events: read either payload shape into a booking snapshot, then mirror it.

Cal.com wraps most triggers as `{"triggerEvent", "createdAt", "payload": {...}}`, but sends
MEETING_STARTED / MEETING_ENDED flat, the booking's fields at the top level (Cal.com issue
#12494), and BOOKING_NO_SHOW_UPDATED with only `bookingUid` and the attendees' flags. A valid
payload we cannot apply is `ignored` with the reason: retrying would not help, and a 5xx
would make Cal.com drop the delivery anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.webhooks.calcom.mirror import apply_booking
from services.webhooks.calcom.snapshot import BookingSnapshot, State
from services.webhooks.ingest.handling import HandlerContext, Outcome, ignored
from shared.fields import utc_instant
from shared.integrations.calcom import slots_cache
from shared.models import Company, WebhookEvent

log = logging.getLogger(__name__)

TRIGGER_STATES: Mapping[str, State] = {
    "BOOKING_CREATED": "accepted",
    "BOOKING_REQUESTED": "pending",
    "BOOKING_RESCHEDULED": "accepted",
    "BOOKING_CANCELLED": "cancelled",
    "BOOKING_REJECTED": "rejected",
    "MEETING_ENDED": "completed",
    "MEETING_STARTED": "started",
    "BOOKING_NO_SHOW_UPDATED": "no_show",
}


class MalformedPayload(ValueError):
    """A payload that passed ingestion's schema but lacks what this trigger needs."""


async def handle(session: AsyncSession, event: WebhookEvent, ctx: HandlerContext) -> Outcome:
    """The `Handler` for source `calcom`; the session is bound to the event's company."""
    body = event.payload if isinstance(event.payload, dict) else {}
    trigger = event.event_type or str(body.get("triggerEvent") or "")
    data = _data(body)
    if trigger == "PING" or (data.get("type") == "Test" and "uid" not in data):
        return ignored("test ping")  # as ingestion reads it: a ping carries no booking uid
    if trigger not in TRIGGER_STATES:
        return ignored(f"unsupported trigger {trigger}")
    company = await session.get(Company, event.company_id) if event.company_id else None
    if company is None:
        return ignored("event of no known company")
    try:
        snap = snapshot_from_webhook(trigger, body)
    except MalformedPayload as exc:
        await slots_cache.invalidate(ctx.redis, company.id, None)
        return ignored(f"malformed {trigger} payload: {exc}")
    try:
        applied = await apply_booking(session, company, snap, now=ctx.now)
    except BaseException:
        await slots_cache.invalidate(ctx.redis, company.id, snap.event_type_id)
        raise
    # Cal.com's calendar changed whatever became of the event here (the Phase 1 hotfix: every
    # booking event, not only create, stales the cached slots). Invalidation never raises.
    await slots_cache.invalidate(ctx.redis, company.id, snap.event_type_id or applied.event_type_id)
    return applied.outcome


def snapshot_from_webhook(trigger: str, body: Mapping[str, Any]) -> BookingSnapshot:
    """The booking state a webhook describes (wrapped or flat shape); MalformedPayload if not."""
    data = _data(body)
    uid = _str(data.get("uid")) or _str(data.get("bookingUid"))
    if uid is None:
        raise MalformedPayload("no booking uid")
    attendees = [a for a in _list(data.get("attendees")) if isinstance(a, dict)]
    first: Mapping[str, Any] = attendees[0] if attendees else {}
    responses = _dict(data.get("responses"))
    state = TRIGGER_STATES[trigger]
    if trigger == "BOOKING_RESCHEDULED" and str(data.get("status", "")).upper() == "PENDING":
        state = "pending"
    return BookingSnapshot(
        uid=uid,
        state=state,
        start=_instant(data.get("startTime"), "startTime"),
        end=_instant(data.get("endTime"), "endTime"),
        event_type_id=_int(data.get("eventTypeId")) or _int(_dict(data.get("eventType")).get("id")),
        organizer_email=_str(_dict(data.get("organizer")).get("email"))
        or _str(_dict(data.get("user")).get("email"))
        or _str(data.get("userPrimaryEmail")),
        attendee_name=_str(first.get("name")) or _response(responses, "name"),
        attendee_email=_str(first.get("email")) or _response(responses, "email"),
        attendee_phone=_str(first.get("phoneNumber"))
        or _response(responses, "attendeePhoneNumber"),
        attendee_time_zone=_str(first.get("timeZone")),
        metadata={str(k): str(v) for k, v in _dict(data.get("metadata")).items() if v is not None},
        rescheduled_from_uid=_str(data.get("rescheduleUid")) or _str(data.get("fromReschedule")),
        previous_start=_instant(data.get("rescheduleStartTime"), "rescheduleStartTime"),
        previous_end=_instant(data.get("rescheduleEndTime"), "rescheduleEndTime"),
        no_show=any(a.get("noShow") is True for a in attendees)
        if trigger == "BOOKING_NO_SHOW_UPDATED"
        else None,
        cancellation_reason=_str(data.get("cancellationReason")),
    )


# Defensive readers: a field of the wrong type reads as absent, never as a crash. ---------


def _data(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The booking fields: inside `payload`, or at the top level (flat MEETING_* events)."""
    inner = body.get("payload")
    return inner if isinstance(inner, dict) else body


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _response(responses: Mapping[str, Any], key: str) -> str | None:
    """A booking-form answer (`responses.<key>.value`) when it is a plain string."""
    return _str(_dict(responses.get(key)).get("value"))


def _instant(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return utc_instant(value)
    except ValueError as exc:
        raise MalformedPayload(f"{name} {exc}") from None

"""What the mirror reads and answers: one Cal.com booking state, and what applying it did.

Webhooks (either payload shape) and reconciliation (API bookings) both normalise into a
`BookingSnapshot`, so the mirror has one input whatever the source, and answers `Applied`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from services.webhooks.ingest.handling import Outcome
from shared.integrations.calcom.models import CalcomBooking

State = Literal["accepted", "pending", "cancelled", "rejected", "completed", "started", "no_show"]
LIVE_STATES = frozenset({"accepted", "pending", "started"})
API_STATES: Mapping[str, State] = {
    "accepted": "accepted",
    "pending": "pending",
    "awaiting_host": "pending",
    "cancelled": "cancelled",
    "rejected": "rejected",
}


@dataclass(frozen=True)
class BookingSnapshot:
    """One Cal.com booking as it is now, normalised from a webhook or an API booking."""

    uid: str
    state: State
    start: datetime | None = None
    end: datetime | None = None
    event_type_id: int | None = None
    organizer_email: str | None = None
    attendee_name: str | None = None
    attendee_email: str | None = None
    attendee_phone: str | None = None
    attendee_time_zone: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    rescheduled_from_uid: str | None = None  # this booking replaced that one
    rescheduled_to_uid: str | None = None  # this (cancelled) booking was replaced by that one
    previous_start: datetime | None = None  # the replaced booking's times, when sent
    previous_end: datetime | None = None
    no_show: bool | None = None
    cancellation_reason: str | None = None

    @property
    def appointment_id(self) -> str | None:
        """Our appointment id: every booking we create carries it in its metadata."""
        return self.metadata.get("appointment_id") or None

    @classmethod
    def from_calcom(cls, booking: CalcomBooking) -> BookingSnapshot | None:
        """The snapshot of an API booking (reconciliation); None for a status we do not know."""
        state = API_STATES.get(booking.status)
        if state is None:
            return None
        return cls(
            uid=booking.uid,
            state=state,
            start=booking.start,
            end=booking.end,
            event_type_id=booking.event_type_id,
            organizer_email=booking.host_emails[0] if booking.host_emails else None,
            attendee_name=booking.attendee_name,
            attendee_email=booking.attendee_email,
            attendee_phone=booking.attendee_phone,
            attendee_time_zone=booking.attendee_time_zone,
            metadata=dict(booking.metadata),
            rescheduled_from_uid=booking.rescheduled_from_uid,
            rescheduled_to_uid=booking.rescheduled_to_uid,
            cancellation_reason=booking.cancellation_reason,
        )


@dataclass(frozen=True)
class Applied:
    """What applying a snapshot did; `event_type_id` names the slots cache to invalidate."""

    outcome: Outcome
    appointment_id: str | None = None
    event_type_id: int | None = None
    changed: bool = False

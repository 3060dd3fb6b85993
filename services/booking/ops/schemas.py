"""Answers of the operator API (and the `/ops` page): instants as ISO strings in the
company's local offset, as `service` renders them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class TimelineItemOut(BaseModel):
    at: str
    source: str
    summary: str
    status: str | None
    # What each source recorded about the step; its keys are the data (they vary by source).
    details: dict[str, Any]


class FailedBookingOut(BaseModel):
    kind: Literal["sync_failed", "booking_error"]
    id: str
    correlation_id: str | None
    call_id: str | None
    error: str
    error_code: str
    appointment_id: str | None
    source: str | None
    http_status: int | None
    service_id: str | None
    staff_id: str | None
    start: str | None
    occurred_at: str
    timeline: list[TimelineItemOut]
    timeline_truncated: bool


class FailedBookingsOut(BaseModel):
    hours: int
    since: str
    items: list[FailedBookingOut]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; null on the last page"
    )


class BookingsToday(BaseModel):
    booked: int
    failed: int
    success_rate: float | None
    sync_failed: int
    day_start: str
    attempts: int = Field(description="booked + failed + refused_unrecorded_today")
    fully_succeeded: int = Field(
        description="Booked today, in Cal.com (or Cal.com not configured), no failed confirmation"
    )
    not_in_calcom: int = Field(description="Booked today, Cal.com sync failed")
    calcom_waiting: int = Field(description="Booked today, Cal.com configured, not synced yet")
    confirmations_failed: int = Field(
        description="Booked today, a booking_confirmed message could not be sent"
    )


class SyncBacklog(BaseModel):
    appointments_pending: int
    outbox_pending: int
    oldest_pending_age_s: int | None


class WebhookBacklog(BaseModel):
    pending: int
    failed: int
    oldest_pending_age_s: int | None


class BreakerOut(BaseModel):
    name: str
    state: Literal["closed", "open", "half_open"]
    calcom_configured: bool
    # "connected" only when configured and the last Cal.com call of the last 24 h succeeded.
    calcom_state: Literal["connected", "failing", "not_configured"]


class OverviewOut(BaseModel):
    timezone: str
    generated_at: str
    bookings_today: BookingsToday
    sync_backlog: SyncBacklog
    webhook_backlog: WebhookBacklog
    breaker: BreakerOut
    overdue_callbacks: int
    # Booking attempts refused today while the database was unavailable (recorded nowhere
    # else; in success_rate too); null when Redis could not be read (docs/adr/0019).
    refused_unrecorded_today: int | None = None

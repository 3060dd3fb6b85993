"""Operator endpoints: failed bookings with their timelines, and today's overview (Bearer key
with the operator scope; always the key's company)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.ops import overview as ops_overview
from services.booking.ops import queries as ops_queries
from services.booking.ops.overview import Overview
from services.booking.ops.queries import FailedBooking, TimelineItem
from shared.db.types import utcnow
from shared.web.auth import OperatorPrincipal
from shared.web.deps import Session

router = APIRouter(prefix="/v1/ops", tags=["ops"])
Hours = Annotated[int, Query(ge=1, le=168, description="Look back this many hours (1-168)")]


class TimelineItemOut(BaseModel):
    at: str
    source: str
    summary: str
    status: str | None
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


class BookingsToday(BaseModel):
    booked: int
    failed: int
    success_rate: float | None
    sync_failed: int
    day_start: str


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


def _local(value: datetime | None, zone: ZoneInfo) -> str | None:
    return None if value is None else value.astimezone(zone).isoformat()


def _plain(value: Any, zone: ZoneInfo) -> Any:
    if isinstance(value, datetime):
        return _local(value, zone)
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    return value


def timeline_json(item: TimelineItem, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "at": _local(item.at, zone),
        "source": item.source,
        "summary": item.summary,
        "status": item.status,
        "details": {k: _plain(v, zone) for k, v in item.details.items() if v is not None},
    }


def failure_json(failed: FailedBooking, zone: ZoneInfo) -> dict[str, Any]:
    """One failure as the API answers it (instants in the company's local offset)."""
    return {
        "kind": failed.kind,
        "id": failed.id,
        "correlation_id": failed.correlation_id,
        "call_id": failed.call_id,
        "error": failed.error,
        "error_code": failed.error_code,
        "appointment_id": failed.appointment_id,
        "source": failed.source,
        "http_status": failed.http_status,
        "service_id": failed.service_id,
        "staff_id": failed.staff_id,
        "start": _local(failed.start, zone),
        "occurred_at": _local(failed.occurred_at, zone),
        "timeline": [timeline_json(item, zone) for item in failed.timeline],
        "timeline_truncated": failed.timeline_truncated,
    }


def overview_json(view: Overview, now: datetime) -> dict[str, Any]:
    zone = ZoneInfo(view.timezone)
    return {
        "timezone": view.timezone,
        "generated_at": _local(now, zone),
        "bookings_today": {
            "booked": view.booked_today,
            "failed": view.failed_today,
            "success_rate": view.success_rate,
            "sync_failed": view.sync_failed_today,
            "day_start": _local(view.day_start, zone),
        },
        "sync_backlog": {
            "appointments_pending": view.appointments_sync_pending,
            "outbox_pending": view.outbox_pending,
            "oldest_pending_age_s": view.outbox_oldest_age_s,
        },
        "webhook_backlog": {
            "pending": view.webhooks_pending,
            "failed": view.webhooks_failed,
            "oldest_pending_age_s": view.webhook_oldest_pending_age_s,
        },
        "breaker": {
            "name": view.breaker_name,
            "state": view.breaker_state,
            "calcom_configured": view.calcom_configured,
        },
        "overdue_callbacks": view.overdue_callbacks,
        "refused_unrecorded_today": view.refused_today,
    }


async def failed_bookings_json(
    session: AsyncSession, company_id: str, hours: int, now: datetime
) -> dict[str, Any]:
    """The failed-booking page of a company as JSON (shared by the API and the /ops page)."""
    since = now - timedelta(hours=hours)
    zone = ZoneInfo(await ops_queries.company_timezone(session, company_id))
    failures = await ops_queries.failed_bookings(session, company_id, since=since)
    return {
        "hours": hours,
        "since": _local(since, zone),
        "items": [failure_json(f, zone) for f in failures],
    }


@router.get("/failed-bookings", response_model=FailedBookingsOut)
async def failed_bookings(
    principal: OperatorPrincipal, session: Session, hours: Hours = 24
) -> dict[str, Any]:
    """Failed bookings of the last `hours`, newest first: Cal.com sync failures and booking
    attempts that ended in an error, each with one time-ordered timeline."""
    return await failed_bookings_json(session, principal.company_id, hours, utcnow())


@router.get("/overview", response_model=OverviewOut)
async def get_overview(
    request: Request, principal: OperatorPrincipal, session: Session
) -> dict[str, Any]:
    """Today's booking success rate, sync and webhook backlogs, Cal.com breaker state and
    overdue callbacks of the key's company."""
    now = utcnow()
    view = await ops_overview.overview(
        session, principal.company_id, request.app.state.redis, now=now
    )
    return overview_json(view, now)

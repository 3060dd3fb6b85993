"""The operator views as answers: failed bookings with their timelines, and today's overview,
every instant in the company's local offset (shared by the API and the `/ops` page)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.ops import integrations as ops_integrations
from services.booking.ops import overview as ops_overview
from services.booking.ops import queries as ops_queries
from services.booking.ops import schedule as ops_schedule
from services.booking.ops import trends as ops_trends
from services.booking.ops.causes import CauseGroup
from services.booking.ops.overview import Overview
from services.booking.ops.queries import FailedBooking, TimelineItem
from services.booking.ops.schedule import BranchDay, Callbacks, Names
from services.booking.ops.schemas import (
    BookingsToday,
    BreakerOut,
    FailedBookingOut,
    FailedBookingsOut,
    OverviewOut,
    SyncBacklog,
    TimelineItemOut,
    WebhookBacklog,
)
from shared.local_time import local_iso
from shared.web.paging import decode_cursor, encode_cursor


def _local(value: datetime | None, tz: str) -> str | None:
    return None if value is None else local_iso(value, tz)


def _plain(value: Any, tz: str) -> Any:
    if isinstance(value, datetime):
        return local_iso(value, tz)
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    return value


def timeline_out(item: TimelineItem, tz: str) -> TimelineItemOut:
    return TimelineItemOut(
        at=local_iso(item.at, tz),
        source=item.source,
        summary=item.summary,
        status=item.status,
        details={k: _plain(v, tz) for k, v in item.details.items() if v is not None},
    )


def failure_out(failed: FailedBooking, tz: str) -> FailedBookingOut:
    """One failure as the API answers it (instants in the company's local offset)."""
    return FailedBookingOut(
        kind=failed.kind,
        id=failed.id,
        correlation_id=failed.correlation_id,
        call_id=failed.call_id,
        error=failed.error,
        error_code=failed.error_code,
        appointment_id=failed.appointment_id,
        source=failed.source,
        http_status=failed.http_status,
        service_id=failed.service_id,
        staff_id=failed.staff_id,
        start=_local(failed.start, tz),
        occurred_at=local_iso(failed.occurred_at, tz),
        timeline=[timeline_out(item, tz) for item in failed.timeline],
        timeline_truncated=failed.timeline_truncated,
    )


def overview_out(view: Overview, now: datetime) -> OverviewOut:
    tz = view.timezone
    return OverviewOut(
        timezone=tz,
        generated_at=local_iso(now, tz),
        bookings_today=BookingsToday(
            booked=view.booked_today,
            failed=view.failed_today,
            success_rate=view.success_rate,
            sync_failed=view.sync_failed_today,
            day_start=local_iso(view.day_start, tz),
            attempts=view.attempts,
            fully_succeeded=view.fully_succeeded,
            not_in_calcom=view.booked_sync_failed,
            calcom_waiting=view.booked_sync_waiting,
            confirmations_failed=view.confirmations_failed,
        ),
        sync_backlog=SyncBacklog(
            appointments_pending=view.appointments_sync_pending,
            outbox_pending=view.outbox_pending,
            oldest_pending_age_s=view.outbox_oldest_age_s,
        ),
        webhook_backlog=WebhookBacklog(
            pending=view.webhooks_pending,
            failed=view.webhooks_failed,
            oldest_pending_age_s=view.webhook_oldest_pending_age_s,
        ),
        breaker=BreakerOut(
            name=view.breaker_name,
            state=view.breaker_state,
            calcom_configured=view.calcom_configured,
            calcom_state=view.calcom_state,
        ),
        overdue_callbacks=view.overdue_callbacks,
        refused_unrecorded_today=view.refused_today,
    )


async def failed_bookings(
    session: AsyncSession,
    company_id: str,
    hours: int,
    now: datetime,
    *,
    limit: int | None = None,
    cursor: str | None = None,
    tz: str | None = None,
) -> FailedBookingsOut:
    """The company's failed bookings of the last `hours`, newest first, with timelines: a
    page of `limit` after `cursor` (None: all of them, as the ops page shows them), instants
    in `tz` (None: the company's zone, read here)."""
    after = decode_cursor(cursor) if cursor is not None else None
    since = now - timedelta(hours=hours)
    if tz is None:
        tz = await ops_queries.company_timezone(session, company_id)
    failures = await ops_queries.failed_bookings(session, company_id, since=since)
    if after is not None:  # newest first: the rows strictly older than the cursor's position
        failures = [f for f in failures if (_utc(f.occurred_at), f.id) < after]
    next_cursor = None
    if limit is not None and len(failures) > limit:
        failures = failures[:limit]
        next_cursor = encode_cursor(failures[-1].occurred_at, failures[-1].id)
    return FailedBookingsOut(
        hours=hours,
        since=local_iso(since, tz),
        items=[failure_out(f, tz) for f in failures],
        next_cursor=next_cursor,
    )


def _utc(instant: datetime) -> datetime:
    """`instant` aware in UTC (SQLite hands back naive UTC)."""
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)


async def overview(
    session: AsyncSession, company_id: str, redis: Redis, now: datetime
) -> OverviewOut:
    """Today's overview of the company as of `now`."""
    company = await ops_overview.company_facts(session, company_id)
    view = await ops_overview.overview(session, company_id, redis, company, now=now)
    return overview_out(view, now)


@dataclass(frozen=True)
class OwnerPage:
    """Everything the `/ops` page shows, read in one transaction."""

    company_name: str
    overview: OverviewOut
    failures: FailedBookingsOut
    schedule: list[BranchDay]
    callbacks: Callbacks
    causes: list[CauseGroup]
    names: Names
    trends: ops_trends.Trends


async def owner_page(
    session: AsyncSession, company_id: str, redis: Redis, now: datetime, hours: int
) -> OwnerPage:
    """Today's overview, schedule and callbacks, the failing integrations of the last 24 h
    and the failed bookings of the last `hours`, with the names behind their ids; the
    figures per day of the last 30 days for the charts. The company's row is read once."""
    company = await ops_overview.company_facts(session, company_id)
    view = await ops_overview.overview(session, company_id, redis, company, now=now)
    start, end = ops_overview.local_day_bounds(now, company.timezone)
    failures = await failed_bookings(session, company_id, hours, now, tz=company.timezone)
    appointment_ids = [f.appointment_id for f in failures.items if f.appointment_id]
    return OwnerPage(
        company_name=company.name,
        overview=overview_out(view, now),
        failures=failures,
        schedule=await ops_schedule.day_schedule(session, start, end),
        callbacks=await ops_schedule.callbacks(session, now),
        causes=await ops_integrations.failing_causes(session, now),
        names=await ops_schedule.names(session, appointment_ids),
        trends=await ops_trends.trends(session, company_id, now, company.timezone),
    )

"""Reads for operators: the failed bookings of a company, newest first, and the key behind
an `/ops` page session.

Failed bookings are (a) appointments whose Cal.com sync failed for good and (b) booking
attempts that ended in an error (`booking_failures`); each gets its timeline
(`ops_timeline`). The overview figures are in `ops_overview`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.ops.timeline import (
    MAX_FAILURES,
    FailedBooking,
    TimelineItem,
    attach_timelines,
)
from shared.models import ApiKey, Appointment, BookingFailure, Company

__all__ = [
    "MAX_FAILURES",
    "FailedBooking",
    "KeyAccess",
    "TimelineItem",
    "company_timezone",
    "failed_bookings",
    "key_access",
]


@dataclass(frozen=True)
class KeyAccess:
    """What decides whether an operator session's key still opens the page."""

    scopes: list[str]
    revoked_at: datetime | None
    expires_at: datetime | None


async def key_access(session: AsyncSession, key_id: str, company_id: str) -> KeyAccess | None:
    """Scopes, revocation and expiry of the company's key `key_id`; None when unknown."""
    row = (
        await session.execute(
            sa.select(ApiKey.scopes, ApiKey.revoked_at, ApiKey.expires_at).where(
                ApiKey.id == key_id, ApiKey.company_id == company_id
            )
        )
    ).first()
    return None if row is None else KeyAccess(row.scopes, row.revoked_at, row.expires_at)


async def company_timezone(session: AsyncSession, company_id: str) -> str:
    tz = await session.scalar(sa.select(Company.timezone).where(Company.id == company_id))
    return str(tz or "UTC")


async def failed_bookings(
    session: AsyncSession, company_id: str, *, since: datetime, limit: int = MAX_FAILURES
) -> list[FailedBooking]:
    """The company's failures since `since`, newest first, each with its timeline."""
    failures = await _booking_errors(session, since, limit) + await _sync_failures(
        session, since, limit
    )
    failures.sort(key=lambda f: (f.occurred_at, f.id), reverse=True)
    failures = failures[:limit]
    if failures:
        await attach_timelines(session, company_id, failures)
    return failures


async def _booking_errors(
    session: AsyncSession, since: datetime, limit: int
) -> list[FailedBooking]:
    rows = await session.scalars(
        sa.select(BookingFailure)
        .where(BookingFailure.created_at >= since)
        .order_by(BookingFailure.created_at.desc(), BookingFailure.id.desc())
        .limit(limit)
    )
    result = []
    for row in rows:
        failed = FailedBooking(
            kind="booking_error",
            id=row.id,
            occurred_at=row.created_at,
            error=row.error_message,
            error_code=row.error_code,
            correlation_id=row.correlation_id,
            call_id=row.call_id,
            appointment_id=None,
            source=row.source,
            http_status=row.http_status,
            service_id=row.service_id,
            staff_id=row.staff_id,
            start=row.starts_at,
            created_at=row.created_at,
        )
        failed.correlation_ids = {c for c in (row.correlation_id, row.call_id) if c}
        result.append(failed)
    return result


async def _sync_failures(session: AsyncSession, since: datetime, limit: int) -> list[FailedBooking]:
    # `updated_at` is when the sync was given up (a later change of the row moves it on).
    rows = await session.scalars(
        sa.select(Appointment)
        .where(Appointment.sync_status == "failed", Appointment.updated_at >= since)
        .order_by(Appointment.updated_at.desc(), Appointment.id.desc())
        .limit(limit)
    )
    result = []
    for row in rows:
        failed = FailedBooking(
            kind="sync_failed",
            id=row.id,
            occurred_at=row.updated_at,
            error=row.sync_error or "Cal.com sync failed",
            error_code="sync_failed",
            correlation_id=None,  # the booking request's: read from its outbox rows below
            call_id=row.call_id,
            appointment_id=row.id,
            source=row.source,
            http_status=None,
            service_id=row.service_id,
            staff_id=row.staff_id,
            start=row.starts_at,
            booking_uid=row.calcom_booking_uid,
            created_at=row.created_at,
        )
        if row.call_id:
            failed.correlation_ids.add(row.call_id)
        failed.timeline.append(
            TimelineItem(
                row.created_at,
                "booking",
                f"Appointment booked ({row.source})",
                row.status,
                {"start": row.starts_at, "service_id": row.service_id, "staff_id": row.staff_id},
            )
        )
        result.append(failed)
    return result

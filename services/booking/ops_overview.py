"""The overview operators look at first: today's booking success rate, the Cal.com sync and
webhook backlogs, the company's Cal.com breaker state and overdue callbacks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.callbacks import OVERDUE_STATUSES
from shared.circuit_breaker import CircuitBreaker
from shared.models import (
    Appointment,
    BookingFailure,
    CallbackRequest,
    Company,
    OutboxEvent,
    WebhookEvent,
)
from shared.queue import BOOKING_QUEUE

BOOKED_SOURCES = ("agent", "api")


@dataclass(frozen=True)
class Overview:
    timezone: str
    day_start: datetime
    booked_today: int
    failed_today: int
    sync_failed_today: int
    appointments_sync_pending: int
    outbox_pending: int
    outbox_oldest_age_s: int | None
    webhooks_pending: int
    webhooks_failed: int
    webhook_oldest_pending_age_s: int | None
    breaker_name: str
    breaker_state: str
    calcom_configured: bool
    overdue_callbacks: int

    @property
    def success_rate(self) -> float | None:
        """Booked / (booked + failed) today; None when nothing was attempted."""
        attempts = self.booked_today + self.failed_today
        return None if attempts == 0 else round(self.booked_today / attempts, 4)


def local_day_bounds(now: datetime, tz: str) -> tuple[datetime, datetime]:
    """Today in `tz` as an instant range [start, end) (a DST day is 23 or 25 hours long)."""
    zone = ZoneInfo(tz)
    day = now.astimezone(zone).date()
    start = datetime.combine(day, time(0), zone)
    end = datetime.combine(day + timedelta(days=1), time(0), zone)
    return start, end


def _age_s(now: datetime, oldest: datetime | None) -> int | None:
    return None if oldest is None else max(0, int((now - oldest).total_seconds()))


def _count_when(condition: Any) -> Any:
    """COUNT(*) FILTER (WHERE ...) that MySQL understands as well."""
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


async def overview(
    session: AsyncSession, company_id: str, redis: Redis, *, now: datetime
) -> Overview:
    """Today's success rate, sync and webhook backlogs, breaker state, overdue callbacks."""
    company = (
        await session.execute(
            sa.select(Company.timezone, Company.calcom_api_key).where(Company.id == company_id)
        )
    ).one()
    tz = company.timezone or "UTC"
    start, end = local_day_bounds(now, tz)
    booked = await session.scalar(
        sa.select(sa.func.count())
        .select_from(Appointment)
        .where(
            Appointment.created_at >= start,
            Appointment.created_at < end,
            Appointment.source.in_(BOOKED_SOURCES),
        )
    )
    # No index leads here (sync_status): a scan of the company's appointment rows.
    sync = (
        await session.execute(
            sa.select(
                _count_when(
                    sa.and_(
                        Appointment.sync_status == "failed",
                        Appointment.updated_at >= start,
                        Appointment.updated_at < end,
                    )
                ),
                _count_when(Appointment.sync_status == "pending"),
            ).where(Appointment.sync_status.in_(("pending", "failed")))
        )
    ).one()
    failed = await session.scalar(
        sa.select(sa.func.count())
        .select_from(BookingFailure)
        .where(BookingFailure.created_at >= start, BookingFailure.created_at < end)
    )
    outbox = (
        await session.execute(
            sa.select(sa.func.count(), sa.func.min(OutboxEvent.created_at)).where(
                OutboxEvent.queue == BOOKING_QUEUE,
                OutboxEvent.status == "pending",
            )
        )
    ).one()
    webhooks = (
        await session.execute(
            sa.select(
                _count_when(WebhookEvent.status == "pending"),
                _count_when(WebhookEvent.status == "failed"),
                sa.func.min(sa.case((WebhookEvent.status == "pending", WebhookEvent.created_at))),
            ).where(WebhookEvent.status.in_(("pending", "failed")))
        )
    ).one()
    overdue = await session.scalar(
        sa.select(sa.func.count())
        .select_from(CallbackRequest)
        .where(CallbackRequest.status.in_(OVERDUE_STATUSES), CallbackRequest.due_at < now)
    )
    breaker = CircuitBreaker(redis, f"calcom:{company_id}")
    return Overview(
        timezone=tz,
        day_start=start,
        booked_today=int(booked or 0),
        failed_today=int(failed or 0),
        sync_failed_today=int(sync[0]),
        appointments_sync_pending=int(sync[1]),
        outbox_pending=int(outbox[0]),
        outbox_oldest_age_s=_age_s(now, outbox[1]),
        webhooks_pending=int(webhooks[0]),
        webhooks_failed=int(webhooks[1]),
        webhook_oldest_pending_age_s=_age_s(now, webhooks[2]),
        breaker_name=breaker.name,
        breaker_state=await breaker.state(),  # read only: no transition, no probe taken
        calcom_configured=bool(company.calcom_api_key),
        overdue_callbacks=int(overdue or 0),
    )

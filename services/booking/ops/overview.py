"""The overview operators look at first: today's booking success rate, the Cal.com sync and
webhook backlogs, the company's Cal.com breaker state and overdue callbacks.

Booking attempts refused while the database was unavailable cannot be written to
`booking_failures`; each one is counted in Redis instead (`note_refused_booking`: a hash per
company and UTC day, one field per quarter hour, kept 8 days), besides the metric
`booking_refused_total` and a log line, and the overview adds today's count to the success
rate (docs/adr/0019). The count survives restarts of the services (it is in Redis), not a
Redis that restarts empty; the metric and the log lines remain then.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import anyio
import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.callbacks.states import OVERDUE_STATUSES
from services.booking.ops.integrations import CalcomState, calcom_state
from shared.jobs.queue import BOOKING_QUEUE
from shared.local_time import to_local, zone_of
from shared.models import (
    Appointment,
    BookingFailure,
    CallbackRequest,
    Company,
    NotificationDelivery,
    OutboxEvent,
    WebhookEvent,
)
from shared.observability.metrics import BOOKING_REFUSED
from shared.redis.circuit_breaker import CircuitBreaker, State

log = logging.getLogger(__name__)

BOOKED_SOURCES = ("agent", "api")
CONFIRMATION_EVENT = "booking_confirmed"
REFUSED_BUCKET_S = 15 * 60  # every zone's offset is a multiple of 15 minutes
REFUSED_KEEP_S = 8 * 24 * 3600
REFUSED_REDIS_TIMEOUT_S = 0.5  # the refusal must not wait on a Redis that is down as well


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
    breaker_state: State
    calcom_configured: bool
    overdue_callbacks: int
    refused_today: int | None = 0  # unrecorded refusals (database down); None: Redis unread
    # Today's bookings that did not fully succeed, and why (docs/operations.md "The ops page").
    booked_sync_failed: int = 0
    booked_sync_waiting: int = 0
    confirmations_failed: int = 0
    fully_succeeded: int = 0
    calcom_state: CalcomState = "not_configured"

    @property
    def attempts(self) -> int:
        return self.booked_today + self.failed_today + (self.refused_today or 0)

    @property
    def success_rate(self) -> float | None:
        """Booked / (booked + failed + refused unrecorded) today; None when nothing was
        attempted."""
        attempts = self.booked_today + self.failed_today + (self.refused_today or 0)
        return None if attempts == 0 else round(self.booked_today / attempts, 4)


def local_day_bounds(now: datetime, tz: str) -> tuple[datetime, datetime]:
    """Today in `tz` as an instant range [start, end) (a DST day is 23 or 25 hours long)."""
    zone = zone_of(tz)
    day = to_local(now, zone).date()
    start = datetime.combine(day, time(0), zone)
    end = datetime.combine(day + timedelta(days=1), time(0), zone)
    return start, end


def _age_s(now: datetime, oldest: datetime | None) -> int | None:
    return None if oldest is None else max(0, int((now - oldest).total_seconds()))


def _count_when(condition: Any) -> Any:
    """COUNT(*) FILTER (WHERE ...) that MySQL understands as well."""
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def _refused_key(company_id: str, day: date) -> str:
    return f"ops:refused:{company_id}:{day.isoformat()}"


async def note_refused_booking(
    redis: Redis | None,
    *,
    source: str,
    company_id: str | None,
    now: datetime,
    details: dict[str, Any],
) -> None:
    """Leave the evidence of a booking attempt refused because the database was unavailable
    (nothing of it could be written there): `booking_refused_total{source, reason}`, one log
    line with what is known of the attempt, and, when the company is known, its count in
    Redis for the ops view. Never raises: the evidence must not replace the refusal."""
    reason = "database_unavailable"
    BOOKING_REFUSED.labels(source, reason).inc()
    log.warning(
        "booking refused: database unavailable",
        extra={"reason": reason, "source": source, "company_id": company_id, **details},
    )
    if redis is None or company_id is None:
        return  # an agent call the database could not even attribute: metric and log only
    instant = now.astimezone(UTC)
    key = _refused_key(company_id, instant.date())
    bucket = int(instant.timestamp()) // REFUSED_BUCKET_S * REFUSED_BUCKET_S
    try:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(key, str(bucket), 1)
            pipe.expire(key, REFUSED_KEEP_S)
            with anyio.fail_after(REFUSED_REDIS_TIMEOUT_S):
                await pipe.execute()
    except Exception as exc:
        log.warning("refused booking not counted for the ops view", extra={"error": repr(exc)})


async def refused_between(
    redis: Redis, company_id: str, start: datetime, end: datetime
) -> int | None:
    """Refusals counted by `note_refused_booking` in [start, end); None when Redis fails."""
    first, last = start.astimezone(UTC), (end - timedelta(microseconds=1)).astimezone(UTC)
    days = [first.date() + timedelta(days=n) for n in range((last.date() - first.date()).days + 1)]
    lower, upper = first.timestamp(), end.astimezone(UTC).timestamp()
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for day in days:
                pipe.hgetall(_refused_key(company_id, day))
            with anyio.fail_after(REFUSED_REDIS_TIMEOUT_S):
                buckets = await pipe.execute()
    except Exception as exc:
        log.warning("refused bookings unreadable", extra={"error": repr(exc)})
        return None
    return sum(
        int(count)
        for counts in buckets
        for field, count in counts.items()
        if lower <= int(field) < upper
    )


@dataclass(frozen=True)
class CompanyFacts:
    """What the ops views need of the company's row, read once per request."""

    name: str
    timezone: str
    calcom_configured: bool


async def company_facts(session: AsyncSession, company_id: str) -> CompanyFacts:
    """The company's name, zone ("UTC" when unset) and whether a Cal.com key is stored."""
    company = (
        await session.execute(
            sa.select(Company.name, Company.timezone, Company.calcom_api_key).where(
                Company.id == company_id
            )
        )
    ).one()
    return CompanyFacts(
        name=str(company.name or ""),
        timezone=str(company.timezone or "UTC"),
        calcom_configured=bool(company.calcom_api_key),
    )


async def overview(
    session: AsyncSession, company_id: str, redis: Redis, company: CompanyFacts, *, now: datetime
) -> Overview:
    """Today's success rate, sync and webhook backlogs, breaker state, overdue callbacks."""
    tz = company.timezone
    start, end = local_day_bounds(now, tz)
    booked_rows = (
        await session.execute(
            sa.select(Appointment.id, Appointment.sync_status).where(
                Appointment.created_at >= start,
                Appointment.created_at < end,
                Appointment.source.in_(BOOKED_SOURCES),
            )
        )
    ).all()
    headline = await _headline(session, booked_rows, company.calcom_configured, start)
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
        booked_today=len(booked_rows),
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
        calcom_configured=company.calcom_configured,
        overdue_callbacks=int(overdue or 0),
        refused_today=await refused_between(redis, company_id, start, end),
        booked_sync_failed=headline.sync_failed,
        booked_sync_waiting=headline.sync_waiting,
        confirmations_failed=headline.confirmations_failed,
        fully_succeeded=headline.fully_succeeded,
        calcom_state=await calcom_state(session, company.calcom_configured, now),
    )


@dataclass(frozen=True)
class _Headline:
    sync_failed: int
    sync_waiting: int
    confirmations_failed: int
    fully_succeeded: int


async def _headline(
    session: AsyncSession, booked: Sequence[Row[str, str]], calcom: bool, start: datetime
) -> _Headline:
    """Of today's bookings: how many never reached Cal.com (its sync failed), still wait for
    it, had a confirmation that could not be sent, and how many fully succeeded: booked,
    in Cal.com (or Cal.com not configured) and no confirmation failed."""
    unconfirmed: set[str] = set()
    if booked:
        failed_messages = await session.scalars(
            sa.select(NotificationDelivery.appointment_id)
            .where(
                NotificationDelivery.event_type == CONFIRMATION_EVENT,
                NotificationDelivery.status == "failed",
                NotificationDelivery.created_at >= start,
            )
            .distinct()
        )
        ids = {row.id for row in booked}
        unconfirmed = {a for a in failed_messages if a is not None and a in ids}
    failed = {row.id for row in booked if row.sync_status == "failed"}
    waiting = {row.id for row in booked if calcom and row.sync_status in ("pending", "local_only")}
    fully = sum(1 for row in booked if row.id not in failed | waiting | unconfirmed)
    return _Headline(len(failed), len(waiting), len(unconfirmed), fully)

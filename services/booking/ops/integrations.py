"""Failing integrations of the last hours, read from what each one left behind: Cal.com call
logs, appointments whose sync was given up, booking failures and undeliverable messages;
grouped by cause (`causes`). Every text is masked before it leaves this module."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.ops.causes import CauseGroup, Signal, group
from shared.models import ApiCallLog, Appointment, BookingFailure, NotificationDelivery
from shared.observability.logging import mask

WINDOW = timedelta(hours=24)
MAX_ROWS = 2000  # per source: the newest ones (the groups' counts say "at least" beyond)
CalcomState = Literal["connected", "failing", "not_configured"]


def _utc(instant: datetime) -> datetime:
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant


def _failed_call() -> sa.ColumnElement[bool]:
    return sa.or_(
        ApiCallLog.response_status.is_(None),
        ApiCallLog.response_status < 200,
        ApiCallLog.response_status >= 300,
    )


async def calcom_state(session: AsyncSession, configured: bool, now: datetime) -> CalcomState:
    """ "connected" only when Cal.com is configured and its last call within the window
    succeeded (no call at all: connected, nothing says otherwise)."""
    if not configured:
        return "not_configured"
    last = (
        await session.execute(
            sa.select(ApiCallLog.response_status)
            .where(ApiCallLog.service == "calcom", ApiCallLog.created_at >= now - WINDOW)
            .order_by(ApiCallLog.created_at.desc(), ApiCallLog.id.desc())
            .limit(1)
        )
    ).first()
    if last is None:
        return "connected"
    status = last[0]
    return "connected" if status is not None and 200 <= status < 300 else "failing"


async def failing_causes(session: AsyncSession, now: datetime) -> list[CauseGroup]:
    """The company's failures since `now - WINDOW`, one group per cause."""
    since = now - WINDOW
    signals: list[Signal] = []
    calls = await session.execute(
        sa.select(
            ApiCallLog.service,
            ApiCallLog.created_at,
            ApiCallLog.response_status,
            ApiCallLog.error_message,
            ApiCallLog.method,
            ApiCallLog.endpoint,
        )
        .where(ApiCallLog.created_at >= since, _failed_call())
        .order_by(ApiCallLog.created_at.desc())
        .limit(MAX_ROWS)
    )
    for service, at, status, error, method, endpoint in calls:
        text = error or f"{method} {endpoint} -> {status if status is not None else 'no answer'}"
        source = "calcom" if service == "calcom" else "retell"
        signals.append(Signal(source, _utc(at), status, mask(text)))
    syncs = await session.execute(
        sa.select(Appointment.updated_at, Appointment.sync_error)
        .where(Appointment.sync_status == "failed", Appointment.updated_at >= since)
        .order_by(Appointment.updated_at.desc())
        .limit(MAX_ROWS)
    )
    for at, error in syncs:
        signals.append(Signal("sync", _utc(at), None, mask(error or "Cal.com sync failed")))
    failures = await session.execute(
        sa.select(
            BookingFailure.created_at,
            BookingFailure.error_message,
            BookingFailure.error_code,
        )
        .where(BookingFailure.created_at >= since)
        .order_by(BookingFailure.created_at.desc())
        .limit(MAX_ROWS)
    )
    for at, error, code in failures:  # its http_status is our answer, not a third party's
        signals.append(Signal("booking", _utc(at), None, mask(f"{code}: {error}"), code))
    messages = await session.execute(
        sa.select(
            NotificationDelivery.updated_at,
            NotificationDelivery.channel,
            NotificationDelivery.last_error,
        )
        .where(
            NotificationDelivery.status.in_(("failed", "retrying")),
            NotificationDelivery.updated_at >= since,
        )
        .order_by(NotificationDelivery.updated_at.desc())
        .limit(MAX_ROWS)
    )
    for at, channel, error in messages:
        signals.append(Signal(channel, _utc(at), None, mask(error or f"{channel} not delivered")))
    return group(signals)

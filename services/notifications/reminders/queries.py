"""SQL of the reminder cron: the horizon, the appointments in it, the reminders staged."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifications.catalog.event_types import REMINDER_EVENTS
from shared.models import (
    LIVE_STATUSES,
    Appointment,
    NotificationConfiguration,
    NotificationReminder,
)

BATCH: Final = 2000
_A = Appointment
_R = NotificationReminder


async def largest_offset_minutes(session: AsyncSession) -> int:
    """The largest reminder offset configured anywhere (0 when none is)."""
    configured = await session.scalar(
        sa.select(sa.func.max(NotificationConfiguration.reminder_offset_minutes)).where(
            NotificationConfiguration.event_type.in_(REMINDER_EVENTS)
        )
    )
    return int(configured or 0)


async def upcoming(session: AsyncSession, now: datetime, horizon: timedelta) -> Sequence[Any]:
    """Live appointments starting within `horizon` of `now`, soonest first (at most BATCH)."""
    result = await session.execute(
        sa.select(
            _A.id,
            _A.company_id,
            _A.branch_id,
            _A.service_id,
            _A.staff_id,
            _A.starts_at,
            _A.created_at,
        )
        .where(
            _A.starts_at > now,
            _A.starts_at <= now + horizon,
            _A.status.in_(LIVE_STATUSES),
        )
        .order_by(_A.starts_at)
        .limit(BATCH)
    )
    return result.all()


async def staged(
    session: AsyncSession, appointment_ids: Sequence[str]
) -> set[tuple[str, str, str, datetime]]:
    """(appointment, event, channel, start) of the reminders already staged for them."""
    done: set[tuple[str, str, str, datetime]] = set()
    for start in range(0, len(appointment_ids), 500):
        rows = await session.execute(
            sa.select(_R.appointment_id, _R.event_type, _R.channel, _R.starts_at).where(
                _R.appointment_id.in_(appointment_ids[start : start + 500])
            )
        )
        done.update((a, e, c, s) for a, e, c, s in rows)
    return done


async def add_reminder(
    session: Any, row: Any, event_type: str, channel: str, due: datetime, now: datetime
) -> bool:
    """Record one reminder as staged; False when another run staged it first."""
    try:
        async with session.begin_nested():
            session.add(
                NotificationReminder(
                    company_id=row.company_id,
                    appointment_id=row.id,
                    event_type=event_type,
                    channel=channel,
                    starts_at=row.starts_at,
                    due_at=due,
                    staged_at=now,
                )
            )
    except IntegrityError:
        return False
    return True

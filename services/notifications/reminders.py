"""The reminder cron: stage `booking_reminder_24h` / `_2h` once per appointment start and
channel, when they fall due.

Due means `start - offset` has passed, counted in elapsed time (UTC), so a reminder 24 h before
an appointment the day after a DST change goes out at a local time one hour off, 24 real hours
before. The offset is the event and channel's effective `reminder_offset_minutes`. A reminder
whose due time lies before the appointment was booked, or more than `LATE_GRACE` in the past
(an appointment booked or moved at short notice), is not sent: the confirmation told them.

Exactly once: a `notification_reminders` row, UNIQUE (appointment, event, channel, start), is
written with the outbox row of its `notify` job in one transaction. The start is in the key,
so a moved appointment gets reminders for its new time; the notify job drops a reminder whose
appointment was cancelled or moved away since (`event_data`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from services.notifications.catalog import CHANNELS, REMINDER_DEFAULT_MINUTES, REMINDER_EVENTS
from services.notifications.config_store import effective_config
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.hierarchy import Chain, ConfigCache
from shared.jobs.outbox import dispatch_staged, stage_notification
from shared.models import (
    LIVE_STATUSES,
    Appointment,
    NotificationConfiguration,
    NotificationReminder,
)

log = logging.getLogger(__name__)

LATE_GRACE: Final = timedelta(hours=1)
BATCH: Final = 2000
_A = Appointment


async def _horizon(db: Database) -> timedelta:
    """How far ahead a reminder can be due: the largest offset configured anywhere."""
    async with db.transaction(SYSTEM, write=False) as session:
        configured = await session.scalar(
            sa.select(sa.func.max(NotificationConfiguration.reminder_offset_minutes)).where(
                NotificationConfiguration.event_type.in_(REMINDER_EVENTS)
            )
        )
    return timedelta(minutes=max(int(configured or 0), *REMINDER_DEFAULT_MINUTES.values()))


def is_due(
    *, starts_at: datetime, booked_at: datetime, offset: timedelta, now: datetime
) -> datetime | None:
    """The reminder's due instant when it should be staged at `now`, else None."""
    due = starts_at - offset
    if due > now or now >= starts_at or booked_at > due or now - due > LATE_GRACE:
        return None
    return due


async def stage_due(
    db: Database, cache: ConfigCache | None, *, now: datetime, pool: Any = None
) -> int:
    """Stage every reminder due at `now`; returns how many were staged."""
    horizon = await _horizon(db)
    async with db.transaction(SYSTEM, write=False) as session:
        rows = (
            await session.execute(
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
        ).all()
        done: set[tuple[str, str, str, datetime]] = set()
        ids = [row.id for row in rows]
        for start in range(0, len(ids), 500):
            staged = await session.execute(
                sa.select(
                    NotificationReminder.appointment_id,
                    NotificationReminder.event_type,
                    NotificationReminder.channel,
                    NotificationReminder.starts_at,
                ).where(NotificationReminder.appointment_id.in_(ids[start : start + 500]))
            )
            done.update((a, e, c, s) for a, e, c, s in staged)
    by_company: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_company[row.company_id].append(row)
    count = 0
    for company_id, appointments in by_company.items():
        try:
            count += await _stage_company(db, cache, company_id, appointments, done, now, pool)
        except Exception:  # one company's trouble must not stop the others' reminders
            log.exception("staging reminders failed", extra={"company_id": company_id})
    return count


async def _stage_company(
    db: Database,
    cache: ConfigCache | None,
    company_id: str,
    appointments: list[Any],
    done: set[tuple[str, str, str, datetime]],
    now: datetime,
    pool: Any,
) -> int:
    count = 0
    async with db.transaction(company_id) as session:
        offsets: dict[tuple[Chain, str, str], timedelta | None] = {}
        for row in appointments:
            chain = Chain(company_id, row.branch_id, row.service_id, row.staff_id)
            for event_type in REMINDER_EVENTS:
                for channel in CHANNELS:
                    if (row.id, event_type, channel, row.starts_at) in done:
                        continue
                    slot = (chain, event_type, channel)
                    if slot not in offsets:
                        effective = await effective_config(
                            session, cache, chain, event_type, channel
                        )
                        config = effective["config"]
                        offsets[slot] = (
                            timedelta(minutes=config["reminder_offset_minutes"])
                            if config["enabled"] and config["recipients"]
                            else None
                        )
                    offset = offsets[slot]
                    if offset is None:
                        continue
                    due = is_due(
                        starts_at=row.starts_at, booked_at=row.created_at, offset=offset, now=now
                    )
                    if due is None:
                        continue
                    if await _stage_one(session, row, event_type, channel, due, now):
                        count += 1
    await dispatch_staged(session, pool)
    return count


async def _stage_one(
    session: Any, row: Any, event_type: str, channel: str, due: datetime, now: datetime
) -> bool:
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
        return False  # another run staged it first
    stage_notification(
        session,
        company_id=row.company_id,
        event_type=event_type,
        aggregate_id=row.id,
        payload={
            "appointment_id": row.id,
            "starts_at": row.starts_at.isoformat(),
            "channel": channel,
        },
    )
    return True

"""The reminder cron: stage `booking_reminder_24h` / `_2h` once per appointment start and
channel, when they fall due.

Due means `start - offset` has passed, counted in elapsed time (UTC), so a reminder 24 h before
an appointment the day after a DST change goes out at a local time one hour off, 24 real hours
before. The offset is the event and channel's effective `reminder_offset_minutes`. A reminder
whose due time lies before the appointment was booked, or more than `due.LATE_GRACE` in the past
(an appointment booked or moved at short notice), is not sent: the confirmation told them.

Exactly once: a `notification_reminders` row, UNIQUE (appointment, event, channel, start), is
written with the outbox row of its `notify` job in one transaction. The start is in the key,
so a moved appointment gets reminders for its new time; the notify job drops a reminder whose
appointment was cancelled or moved away since (`deliveries.event_data`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from services.notifications.catalog.event_types import (
    CHANNELS,
    REMINDER_DEFAULT_MINUTES,
    REMINDER_EVENTS,
)
from services.notifications.configs.queries import effective_config
from services.notifications.reminders import queries
from services.notifications.reminders.due import is_due
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.hierarchy.cache import ConfigCache
from shared.hierarchy.chain import Chain
from shared.jobs.outbox import dispatch_staged, stage_notification

log = logging.getLogger(__name__)


async def _horizon(db: Database) -> timedelta:
    """How far ahead a reminder can be due: the largest offset configured anywhere."""
    async with db.transaction(SYSTEM, write=False) as session:
        configured = await queries.largest_offset_minutes(session)
    return timedelta(minutes=max(configured, *REMINDER_DEFAULT_MINUTES.values()))


async def stage_due(
    db: Database, cache: ConfigCache | None, *, now: datetime, pool: Any = None
) -> int:
    """Stage every reminder due at `now`; returns how many were staged."""
    horizon = await _horizon(db)
    async with db.transaction(SYSTEM, write=False) as session:
        rows = await queries.upcoming(session, now, horizon)
        done = await queries.staged(session, [row.id for row in rows])
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
    if not await queries.add_reminder(session, row, event_type, channel, due, now):
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

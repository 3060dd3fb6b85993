"""The overlap fence. Every write that gives a staff member time (book, reschedule, a Cal.com
mirror) first serializes on that staff member, then checks for overlaps, then writes, in one
transaction:

- MariaDB/MySQL: `SELECT ... FROM staff WHERE id IN (...) ORDER BY id FOR UPDATE` (row locks,
  sorted so two movers never deadlock), then the overlap query at READ COMMITTED, which sees
  every committed appointment because every writer took the same lock first.
- SQLite: the write transaction began with `BEGIN IMMEDIATE`, so it already holds the database
  write lock; SQLAlchemy would drop FOR UPDATE there anyway.

Blocked ranges (buffers included, `blocked_range`) are half-open: [from, until).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import LIVE_STATUSES, Appointment, Service, Staff, TimeOff

# No appointment blocks more than this; it bounds the index range the overlap query scans.
MAX_BLOCK = timedelta(hours=24)


@dataclass(frozen=True)
class Conflict:
    kind: str  # "appointment" | "time_off"
    id: str
    customer_id: str | None
    service_id: str | None
    starts_at: datetime | None


def blocked_range(service: Service, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The time an appointment keeps its staff member busy: the booking plus the buffers."""
    return (
        start - timedelta(minutes=service.buffer_before_minutes),
        end + timedelta(minutes=service.buffer_after_minutes),
    )


def is_sqlite(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "sqlite"


_LOCK_STAFF: Final = (
    sa.select(Staff.id)
    .where(Staff.id.in_(sa.bindparam("staff_ids", expanding=True)))
    .order_by(Staff.id)
    .with_for_update()
)


async def lock_staff(session: AsyncSession, staff_ids: Iterable[str]) -> None:
    """Serialize on the given staff members for the rest of the transaction."""
    ids = sorted(set(staff_ids))
    if not ids or is_sqlite(session):
        return
    await session.execute(_LOCK_STAFF, {"staff_ids": ids})


def _conflicts_statement(excluding: bool) -> sa.CompoundSelect[Any]:
    """Live appointments and time off of one staff member overlapping a blocked range (built
    once, with and without excluded appointments)."""
    staff_id: sa.BindParameter[str] = sa.bindparam("staff_id")
    blocked_from = sa.bindparam("blocked_from", type_=Appointment.blocked_from.type)
    blocked_until = sa.bindparam("blocked_until", type_=Appointment.blocked_until.type)
    appointments = sa.select(
        sa.literal("appointment").label("kind"),
        Appointment.id,
        Appointment.customer_id,
        Appointment.service_id,
        Appointment.starts_at,
    ).where(
        Appointment.staff_id == staff_id,
        Appointment.status.in_(LIVE_STATUSES),
        Appointment.blocked_from >= sa.bindparam("scan_from", type_=Appointment.blocked_from.type),
        Appointment.blocked_from < blocked_until,
        Appointment.blocked_until > blocked_from,
    )
    if excluding:
        excluded: sa.BindParameter[list[str]] = sa.bindparam("excluded", expanding=True)
        appointments = appointments.where(Appointment.id.not_in(excluded))
    time_off = sa.select(
        sa.literal("time_off").label("kind"),
        TimeOff.id,
        sa.null().label("customer_id"),
        sa.null().label("service_id"),
        sa.null().label("starts_at"),
    ).where(
        TimeOff.staff_id == staff_id,
        TimeOff.starts_at < blocked_until,
        TimeOff.ends_at > blocked_from,
    )
    return sa.union_all(appointments, time_off)


_CONFLICTS: Final = {excluding: _conflicts_statement(excluding) for excluding in (False, True)}


async def conflicts(
    session: AsyncSession,
    staff_id: str,
    blocked_from: datetime,
    blocked_until: datetime,
    exclude_ids: Iterable[str] = (),
) -> list[Conflict]:
    """Live appointments and time off of `staff_id` overlapping [blocked_from, blocked_until)."""
    excluded = list(exclude_ids)
    params = {
        "staff_id": staff_id,
        "blocked_from": blocked_from,
        "blocked_until": blocked_until,
        "scan_from": blocked_from - MAX_BLOCK,
        "excluded": excluded,
    }
    result: sa.Result[Any] = await session.execute(_CONFLICTS[bool(excluded)], params)
    rows: list[Any] = list(result.all())
    return [Conflict(str(r[0]), str(r[1]), r[2], r[3], r[4]) for r in rows]

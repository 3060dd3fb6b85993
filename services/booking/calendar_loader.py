"""Load what the availability engine needs from the database, in a fixed number of queries.

Rows are read as plain columns (no ORM identity map) so that a busy branch stays cheap.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.availability import (
    ExistingAppointment,
    StaffCalendar,
    TimeOffPeriod,
    WorkingInterval,
    local_day_bounds,
)
from services.booking.slot_guard import MAX_BLOCK
from shared.models import LIVE_STATUSES, Appointment, Staff, StaffService, TimeOff, WorkingHours


@dataclass(frozen=True)
class StaffRow:
    id: str
    name: str
    branch_id: str


async def qualified_staff(
    session: AsyncSession,
    service_id: str,
    branch_ids: Sequence[str] | None = None,
    staff_id: str | None = None,
) -> list[StaffRow]:
    """Active staff qualified for the service (stable order: name, then id)."""
    query = (
        sa.select(Staff.id, Staff.name, Staff.branch_id)
        .join(StaffService, StaffService.staff_id == Staff.id)
        .where(StaffService.service_id == service_id, Staff.active.is_(True))
        .order_by(Staff.name, Staff.id)
    )
    if branch_ids is not None:
        query = query.where(Staff.branch_id.in_(list(branch_ids)))
    if staff_id is not None:
        query = query.where(Staff.id == staff_id)
    return [StaffRow(*row) for row in await session.execute(query)]


def parse_time(value: object) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, timedelta):  # MySQL drivers may return TIME as a timedelta
        seconds = int(value.total_seconds())
        return time(seconds // 3600, seconds % 3600 // 60, seconds % 60)
    return time.fromisoformat(str(value).split(".")[0])


async def load_calendars(
    session: AsyncSession,
    staff: Sequence[StaffRow],
    first_date: date,
    days: int,
    timezone: str,
    ignore: Sequence[str] = (),
) -> list[StaffCalendar]:
    """Working hours, time off and live appointments of `staff` around the local date range.

    `ignore`: appointment ids to leave out (the one being moved).
    """
    if not staff:
        return []
    ids = [s.id for s in staff]
    range_start, _ = local_day_bounds(first_date, timezone)
    _, range_end = local_day_bounds(first_date + timedelta(days=max(days, 1) - 1), timezone)
    hours: dict[str, list[WorkingInterval]] = defaultdict(list)
    for staff_id, weekday, start, end in await session.execute(
        sa.select(
            WorkingHours.staff_id,
            WorkingHours.weekday,
            WorkingHours.start_time,
            WorkingHours.end_time,
        ).where(WorkingHours.staff_id.in_(ids))
    ):
        hours[staff_id].append(WorkingInterval(weekday, parse_time(start), parse_time(end)))
    absences: dict[str, list[TimeOffPeriod]] = defaultdict(list)
    for staff_id, starts_at, ends_at in await session.execute(
        sa.select(TimeOff.staff_id, TimeOff.starts_at, TimeOff.ends_at).where(
            TimeOff.staff_id.in_(ids),
            TimeOff.starts_at < range_end + MAX_BLOCK,
            TimeOff.ends_at > range_start - MAX_BLOCK,
        )
    ):
        absences[staff_id].append(TimeOffPeriod(starts_at, ends_at))
    booked: dict[str, list[ExistingAppointment]] = defaultdict(list)
    for staff_id, starts_at, ends_at, blocked_from, blocked_until in await session.execute(
        sa.select(
            Appointment.staff_id,
            Appointment.starts_at,
            Appointment.ends_at,
            Appointment.blocked_from,
            Appointment.blocked_until,
        ).where(
            Appointment.staff_id.in_(ids),
            Appointment.status.in_(LIVE_STATUSES),
            Appointment.blocked_from >= range_start - MAX_BLOCK,
            Appointment.blocked_from < range_end + MAX_BLOCK,
            Appointment.id.not_in(list(ignore)) if ignore else sa.true(),
        )
    ):
        booked[staff_id].append(
            ExistingAppointment(starts_at, ends_at, blocked_from, blocked_until)
        )
    return [StaffCalendar(s.id, s.name, hours[s.id], absences[s.id], booked[s.id]) for s in staff]


def horizon_of(now: datetime, days: int) -> datetime:
    return now + timedelta(days=days)

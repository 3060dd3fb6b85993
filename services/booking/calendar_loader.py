"""Load what the availability engine needs from the database, in a fixed number of queries.

Rows are read as plain columns (no ORM identity map) so that a busy branch stays cheap.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, time, timedelta

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
from shared.db.tenancy import tenant_condition
from shared.models import LIVE_STATUSES, Appointment, Staff, StaffService, TimeOff, WorkingHours


@dataclass(frozen=True)
class StaffRow:
    id: str
    name: str
    branch_id: str
    hours: tuple[WorkingInterval, ...] = ()


def weekly_hours_column() -> sa.ScalarSelect[str]:
    """A staff member's working hours as one text value (`weekday|start|end,...`), so that
    they come with the staff row instead of costing a query of their own."""
    part = (
        sa.cast(WorkingHours.weekday, sa.String)
        + sa.literal("|")
        + sa.cast(WorkingHours.start_time, sa.String(16))
        + sa.literal("|")
        + sa.cast(WorkingHours.end_time, sa.String(16))
    )
    return (
        sa.select(sa.func.group_concat(part))
        .where(WorkingHours.staff_id == Staff.id, WorkingHours.company_id == Staff.company_id)
        .scalar_subquery()
    )


def parse_weekly_hours(text: str | None) -> tuple[WorkingInterval, ...]:
    if not text:
        return ()
    intervals = []
    for item in text.split(","):
        weekday, start, end = item.split("|")
        intervals.append(WorkingInterval(int(weekday), parse_time(start), parse_time(end)))
    return tuple(sorted(intervals, key=lambda iv: (iv.weekday, iv.start)))


async def qualified_staff(
    session: AsyncSession,
    service_id: str,
    branch_ids: Sequence[str] | None = None,
    staff_id: str | None = None,
) -> list[StaffRow]:
    """Active staff qualified for the service, with their weekly hours (order: name, id)."""
    query = (
        sa.select(Staff.id, Staff.name, Staff.branch_id, weekly_hours_column())
        .join(StaffService, StaffService.staff_id == Staff.id)
        .where(StaffService.service_id == service_id, Staff.active.is_(True))
        .order_by(Staff.name, Staff.id)
    )
    if branch_ids is not None:
        query = query.where(Staff.branch_id.in_(list(branch_ids)))
    if staff_id is not None:
        query = query.where(Staff.id == staff_id)
    return [
        StaffRow(staff, name, branch, parse_weekly_hours(hours))
        for staff, name, branch, hours in await session.execute(query)
    ]


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
    margin: timedelta = timedelta(hours=6),
) -> list[StaffCalendar]:
    """Working hours, time off and live appointments of `staff` around the local date range.

    `margin`: how far a slot's blocked range can reach beyond the range (the service's
    duration plus buffers). `ignore`: appointment ids to leave out (the one being moved).
    Read through Core on the session's connection (no ORM row machinery: a busy branch has
    hundreds of rows), so the company is filtered explicitly here.
    """
    if not staff:
        return []
    ids = [s.id for s in staff]
    range_start, _ = local_day_bounds(first_date, timezone)
    _, range_end = local_day_bounds(first_date + timedelta(days=max(days, 1) - 1), timezone)
    low, high = range_start - margin, range_end + margin
    conn = await session.connection()
    # Time off and appointments in one round trip: (kind, staff, start, end, blocked range).
    absences = sa.select(
        sa.literal("off").label("kind"),
        TimeOff.staff_id,
        TimeOff.starts_at,
        TimeOff.ends_at,
        TimeOff.starts_at.label("blocked_from"),
        TimeOff.ends_at.label("blocked_until"),
    ).where(
        tenant_condition(session, TimeOff),
        TimeOff.staff_id.in_(ids),
        TimeOff.starts_at < high,
        TimeOff.ends_at > low,
    )
    appointments = sa.select(
        sa.literal("appt").label("kind"),
        Appointment.staff_id,
        Appointment.starts_at,
        Appointment.ends_at,
        Appointment.blocked_from,
        Appointment.blocked_until,
    ).where(
        tenant_condition(session, Appointment),
        Appointment.staff_id.in_(ids),
        Appointment.status.in_(LIVE_STATUSES),
        Appointment.blocked_from >= low - MAX_BLOCK,  # the index range; MAX_BLOCK bounds length
        Appointment.blocked_from < high,
        Appointment.blocked_until > low,
    )
    if ignore:
        appointments = appointments.where(Appointment.id.not_in(list(ignore)))
    off: dict[str, list[TimeOffPeriod]] = defaultdict(list)
    booked: dict[str, list[ExistingAppointment]] = defaultdict(list)
    for kind, staff_id, starts_at, ends_at, blocked_from, blocked_until in await conn.execute(
        sa.union_all(appointments, absences)
    ):
        if kind == "off":
            off[staff_id].append(TimeOffPeriod(starts_at, ends_at))
        else:
            booked[staff_id].append(
                ExistingAppointment(starts_at, ends_at, blocked_from, blocked_until)
            )
    return [StaffCalendar(s.id, s.name, s.hours, off[s.id], booked[s.id]) for s in staff]

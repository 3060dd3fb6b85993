"""Load what the availability engine needs from the database, in a fixed number of queries.

Rows are read as plain columns (no ORM identity map) so that a busy branch stays cheap.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from services.booking.scheduling.availability import (
    StaffCalendar,
    TimeOffPeriod,
    WorkingInterval,
    local_day_bounds,
    ticks_naive,
)
from shared.appointments.fence import MAX_BLOCK
from shared.db.scoped import execute, scoped
from shared.db.tenancy import PER_CALL
from shared.models import (
    LIVE_STATUSES,
    Appointment,
    BranchClosedDay,
    BranchOpeningHours,
    Service,
    Staff,
    StaffService,
    TimeOff,
    WorkingHours,
)


@dataclass(frozen=True)
class StaffRow:
    id: str
    name: str
    branch_id: str
    hours: tuple[WorkingInterval, ...] = ()


class _Yesterday(FunctionElement[date]):
    """The day before the database's current date (covers any offset of the branch's zone)."""

    type = sa.Date()
    inherit_cache = True


@compiles(_Yesterday)
def _yesterday(_element: _Yesterday, _compiler: Any, **_kw: Any) -> str:
    return "(CURRENT_DATE - INTERVAL 1 DAY)"


@compiles(_Yesterday, "sqlite")
def _yesterday_sqlite(_element: _Yesterday, _compiler: Any, **_kw: Any) -> str:
    return "date('now', '-1 day')"


def _intervals_text(model: Any, owner: Any) -> sa.ScalarSelect[Any]:
    """`weekday|start|end,...` of the rows of `model` (staff or branch hours) of `owner`."""
    part = (
        sa.cast(model.weekday, sa.String)
        + sa.literal("|")
        + sa.cast(model.start_time, sa.String(16))
        + sa.literal("|")
        + sa.cast(model.end_time, sa.String(16))
    )
    return sa.select(sa.func.group_concat(part)).where(owner).scalar_subquery()


def weekly_hours_column() -> sa.ColumnElement[str]:
    """A staff member's working hours, the opening hours of their branch and its closed days
    from yesterday on, as one text value (`hours;opening;closed`: `weekday|start|end,...`
    twice, then `YYYY-MM-DD,...`), so that they come with the staff row instead of costing
    queries of their own. `parse_weekly_hours` makes the effective hours of it."""
    closed = (
        sa.select(sa.func.group_concat(sa.cast(BranchClosedDay.day, sa.String(10))))
        .where(BranchClosedDay.branch_id == Staff.branch_id, BranchClosedDay.day >= _Yesterday())
        .scalar_subquery()
    )
    parts = [
        _intervals_text(WorkingHours, WorkingHours.staff_id == Staff.id),
        _intervals_text(BranchOpeningHours, BranchOpeningHours.branch_id == Staff.branch_id),
        closed,
    ]
    texts = [sa.func.coalesce(part, sa.literal(""), type_=sa.String) for part in parts]
    return texts[0] + sa.literal(";") + texts[1] + sa.literal(";") + texts[2]


def _intervals(text: str) -> list[WorkingInterval]:
    intervals = []
    for item in filter(None, text.split(",")):
        weekday, start, end = item.split("|")
        intervals.append(WorkingInterval(int(weekday), parse_time(start), parse_time(end)))
    return intervals


def parse_weekly_hours(text: str | None) -> tuple[WorkingInterval, ...]:
    """The effective weekly hours: the staff hours within the branch's opening hours (when it
    has any), each carrying the branch's closed days."""
    if not text:
        return ()
    hours, _, rest = text.partition(";")
    opening, _, closed_text = rest.partition(";")
    intervals = _intervals(hours)
    if opening:
        intervals = within(intervals, _intervals(opening))
    if closed_text:
        closed = frozenset(date.fromisoformat(day) for day in closed_text.split(","))
        intervals = [replace(iv, closed_on=closed) for iv in intervals]
    return tuple(sorted(intervals, key=lambda iv: (iv.weekday, iv.start)))


def _minutes(value: time, end: bool = False) -> int:
    return 24 * 60 if end and value == time(0) else value.hour * 60 + value.minute


def within(
    hours: Sequence[WorkingInterval], opening: Sequence[WorkingInterval]
) -> list[WorkingInterval]:
    """`hours` cut to the `opening` intervals of the same weekday (none that day: closed)."""
    result = []
    for iv in hours:
        for open_iv in opening:
            if open_iv.weekday != iv.weekday:
                continue
            lo = max(_minutes(iv.start), _minutes(open_iv.start))
            hi = min(_minutes(iv.end, True), _minutes(open_iv.end, True))
            if lo < hi:
                end = time(0) if hi == 24 * 60 else time(hi // 60, hi % 60)
                result.append(WorkingInterval(iv.weekday, time(lo // 60, lo % 60), end))
    return result


@functools.cache
def _staff_statement(by_branch: bool, by_staff: bool) -> sa.Select[Any]:
    """Qualified active staff with their weekly hours (built once per filter combination:
    building and keying a statement per call cost more than running it; scoped per call)."""
    columns: list[Any] = [Staff.id, Staff.name, Staff.branch_id, weekly_hours_column()]
    query = (
        sa.select(*columns)
        .join(StaffService, StaffService.staff_id == Staff.id)
        .where(StaffService.service_id == sa.bindparam("service_id"), Staff.active.is_(True))
        .order_by(Staff.name, Staff.id)
    )
    if by_branch:
        query = query.where(Staff.branch_id.in_(sa.bindparam("branch_ids", expanding=True)))
    if by_staff:
        query = query.where(Staff.id == sa.bindparam("staff_id"))
    return scoped(query, PER_CALL)


async def qualified_staff(
    session: AsyncSession,
    service: Service,
    branch_ids: Sequence[str] | None = None,
    staff_id: str | None = None,
) -> list[StaffRow]:
    """Active staff qualified for the service, with their weekly hours (order: name, id).
    Core on the session's connection, scoped per call."""
    statement = _staff_statement(branch_ids is not None, staff_id is not None)
    params = {
        "service_id": service.id,
        "branch_ids": list(branch_ids or ()),
        "staff_id": staff_id,
    }
    rows = await execute(session, statement, params, company_id=service.company_id)
    return [
        StaffRow(staff, name, branch, parse_weekly_hours(hours))
        for staff, name, branch, hours in rows
    ]


def parse_time(value: object) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, timedelta):  # MySQL drivers may return TIME as a timedelta
        seconds = int(value.total_seconds())
        return time(seconds // 3600, seconds % 3600 // 60, seconds % 60)
    return time.fromisoformat(str(value).split(".")[0])


def _naive(column: Any, name: str) -> Any:
    """A stored instant as the driver reads it (naive UTC), without the `UTCDateTime` result
    processor: the loader turns it into ticks itself, hundreds of rows per request."""
    return sa.type_coerce(column, sa.DateTime()).label(name)


@functools.cache
def _calendar_statement(ignoring: bool) -> sa.CompoundSelect[Any]:
    """Time off and live appointments of some staff around a range, in one round trip:
    (kind, staff, start, end, blocked range). Built once, with and without `ignore`, scoped
    per call."""
    staff_ids: sa.BindParameter[list[str]] = sa.bindparam("staff_ids", expanding=True)
    low: sa.BindParameter[datetime] = sa.bindparam("low")
    high: sa.BindParameter[datetime] = sa.bindparam("high")
    absences = sa.select(
        sa.literal("off").label("kind"),
        TimeOff.staff_id,
        _naive(TimeOff.starts_at, "starts_at"),
        _naive(TimeOff.ends_at, "ends_at"),
        _naive(TimeOff.starts_at, "blocked_from"),
        _naive(TimeOff.ends_at, "blocked_until"),
    ).where(
        TimeOff.staff_id.in_(staff_ids),
        TimeOff.starts_at < high,
        TimeOff.ends_at > low,
    )
    appointments = sa.select(
        sa.literal("appt").label("kind"),
        Appointment.staff_id,
        _naive(Appointment.starts_at, "starts_at"),
        _naive(Appointment.ends_at, "ends_at"),
        _naive(Appointment.blocked_from, "blocked_from"),
        _naive(Appointment.blocked_until, "blocked_until"),
    ).where(
        Appointment.staff_id.in_(staff_ids),
        Appointment.status.in_(LIVE_STATUSES),
        # The index range; MAX_BLOCK bounds an appointment's blocked length.
        Appointment.blocked_from >= sa.bindparam("scan_low"),
        Appointment.blocked_from < high,
        Appointment.blocked_until > low,
    )
    if ignoring:
        ignored: sa.BindParameter[list[str]] = sa.bindparam("ignore", expanding=True)
        appointments = appointments.where(Appointment.id.not_in(ignored))
    return scoped(sa.union_all(appointments, absences), PER_CALL)


async def load_calendars(
    session: AsyncSession,
    company_id: str,
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
    """
    low, high = local_range(first_date, days, timezone)
    return await calendars_between(session, company_id, staff, low - margin, high + margin, ignore)


def local_range(first_date: date, days: int, timezone: str) -> tuple[datetime, datetime]:
    """The UTC bounds of the local days `first_date`.. `first_date + days - 1`."""
    range_start, _ = local_day_bounds(first_date, timezone)
    _, range_end = local_day_bounds(first_date + timedelta(days=max(days, 1) - 1), timezone)
    return range_start, range_end


async def calendars_between(
    session: AsyncSession,
    company_id: str,
    staff: Sequence[StaffRow],
    low: datetime,
    high: datetime,
    ignore: Sequence[str] = (),
) -> list[StaffCalendar]:
    """The calendars of `staff` with the time off and live appointments between `low` and
    `high`. One statement built once, run through Core on the session's connection (no ORM row
    machinery: a busy branch has hundreds of rows), scoped per call."""
    if not staff:
        return []
    params = {
        "staff_ids": [s.id for s in staff],
        "low": low,
        "high": high,
        "scan_low": low - MAX_BLOCK,
        "ignore": list(ignore),
    }
    statement = _calendar_statement(bool(ignore))
    rows = await execute(session, statement, params, company_id=company_id)
    off: dict[str, list[TimeOffPeriod]] = defaultdict(list)
    blocked: dict[str, list[tuple[int, int]]] = defaultdict(list)
    booked: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for kind, staff_id, starts_at, ends_at, blocked_from, blocked_until in rows:
        if kind == "off":
            off[staff_id].append(
                TimeOffPeriod(starts_at.replace(tzinfo=UTC), ends_at.replace(tzinfo=UTC))
            )
            continue
        # Appointments as ticks (the engine's unit): hundreds of rows per request.
        start, end = ticks_naive(starts_at), ticks_naive(ends_at)
        blocked[staff_id].append(
            (min(ticks_naive(blocked_from), start), max(ticks_naive(blocked_until), end))
        )
        booked[staff_id].append((start, end - start))
    return [
        StaffCalendar(s.id, s.name, s.hours, off[s.id], blocked=blocked[s.id], booked=booked[s.id])
        for s in staff
    ]

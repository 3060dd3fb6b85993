"""Use cases of a branch's opening hours and closed days, and the rule that staff working
hours lie within the opening hours. Weekdays: 0 = Monday .. 6 = Sunday, branch-local times."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from itertools import pairwise
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.admin.opening_hours import queries
from services.booking.admin.opening_hours.public_holidays import public_holidays
from services.booking.admin.opening_hours.schemas import (
    ClosedDayIn,
    ClosedDayList,
    ClosedDayOut,
    HolidayImportIn,
    HolidayImportOut,
    OpeningHoursIn,
    OpeningHoursOut,
    OpeningIntervalOut,
)
from shared.db.types import utcnow
from shared.errors import Conflict, InvalidInput, NotFound
from shared.fields import WEEKDAY_NAMES
from shared.local_time import to_local
from shared.models import Branch, BranchClosedDay, BranchOpeningHours
from shared.web.paging import decode_cursor, encode_cursor

IMPORT_YEARS_AHEAD = 10


class OutsideOpeningHours(InvalidInput):
    """A staff working-hours interval outside its branch's opening hours."""

    status, code, title = 422, "outside_opening_hours", "Outside opening hours"


class StaffHoursOutsideOpeningHours(InvalidInput):
    """New opening hours that existing staff working hours would fall outside of."""

    status, code, title = 422, "staff_hours_outside_opening_hours", "Staff hours outside"


def _hhmm(value: time) -> str:
    return value.strftime("%H:%M")


def _inside(weekday: int, start: time, end: time, opening: Sequence[Any]) -> bool:
    return any(
        o.weekday == weekday and o.start_time <= start and end <= o.end_time for o in opening
    )


def _local_today(branch: Branch, now: datetime | None = None) -> date:
    return to_local(now or utcnow(), branch.timezone).date()


# Opening hours -------------------------------------------------------------------------


def _hours_out(branch: Branch, rows: Sequence[BranchOpeningHours]) -> OpeningHoursOut:
    items = [
        OpeningIntervalOut(
            weekday=row.weekday,
            weekday_name=WEEKDAY_NAMES[row.weekday],
            start=row.start_time,
            end=row.end_time,
        )
        for row in rows
    ]
    return OpeningHoursOut(branch_id=branch.id, timezone=branch.timezone, items=items)


async def get_opening_hours(session: AsyncSession, branch_id: str) -> OpeningHoursOut:
    branch = await queries.branch_of(session, branch_id)
    return _hours_out(branch, await queries.opening_hours(session, branch_id))


async def put_opening_hours(
    session: AsyncSession, branch_id: str, body: OpeningHoursIn
) -> OpeningHoursOut:
    """Replace the week. Overlapping intervals: 422 naming the later one; staff working
    hours that would lie outside: 422 `staff_hours_outside_opening_hours` listing them."""
    branch = await queries.locked_branch(session, branch_id)
    order = sorted(
        range(len(body.hours)), key=lambda i: (body.hours[i].weekday, body.hours[i].start)
    )
    for before, index in pairwise(order):
        earlier, later = body.hours[before], body.hours[index]
        if earlier.weekday == later.weekday and later.start < earlier.end:
            raise InvalidInput(
                f"overlaps {_hhmm(earlier.start)}-{_hhmm(earlier.end)} on "
                f"{WEEKDAY_NAMES[later.weekday]}",
                field=f"hours.{index}.start",
            )
    rows = [
        BranchOpeningHours(
            branch_id=branch.id, weekday=iv.weekday, start_time=iv.start, end_time=iv.end
        )
        for iv in (body.hours[i] for i in order)
    ]
    if rows:
        outside = [
            {
                "staff": name,
                "weekday": wh.weekday,
                "weekday_name": WEEKDAY_NAMES[wh.weekday],
                "start": _hhmm(wh.start_time),
                "end": _hhmm(wh.end_time),
            }
            for name, wh in await queries.staff_hours(session, branch.id)
            if not _inside(wh.weekday, wh.start_time, wh.end_time, rows)
        ]
        if outside:
            listed = "; ".join(
                f"{o['staff']} {o['weekday_name']} {o['start']}-{o['end']}" for o in outside
            )
            raise StaffHoursOutsideOpeningHours(
                "These staff working hours would lie outside the opening hours; change them "
                f"first: {listed}",
                field="hours",
                staff_hours=outside,
            )
    await queries.replace_opening_hours(session, branch.id, rows)
    return _hours_out(branch, rows)


async def staff_hours_within_opening_hours(
    session: AsyncSession, values: dict[str, Any], _current: Any
) -> None:
    """Admin rule of working hours: when the staff member's branch has opening hours, the
    interval lies within one of that weekday's (else 422 `outside_opening_hours`)."""
    _, opening = await queries.opening_hours_of_staff(session, values["staff_id"])
    weekday, start, end = values["weekday"], values["start_time"], values["end_time"]
    if not opening or _inside(weekday, start, end, opening):
        return
    that_day = [o for o in opening if o.weekday == weekday]
    shown = [{"start": _hhmm(o.start_time), "end": _hhmm(o.end_time)} for o in that_day]
    name = WEEKDAY_NAMES[weekday]
    hours = ", ".join(f"{o['start']}-{o['end']}" for o in shown) or "closed"
    start_inside = any(o.start_time <= start < o.end_time for o in that_day)
    raise OutsideOpeningHours(
        f"lies outside the branch's opening hours on {name}: {hours}",
        field="end_time" if start_inside else "start_time",
        weekday=weekday,
        weekday_name=name,
        opening_hours=shown,
    )


# Closed days ---------------------------------------------------------------------------


def _position(row: BranchClosedDay) -> str:
    return encode_cursor(datetime.combine(row.day, time(0), UTC), row.id)


async def list_closed_days(
    session: AsyncSession,
    branch_id: str,
    first: date | None,
    last: date | None,
    limit: int,
    cursor: str | None,
) -> ClosedDayList:
    await queries.branch_of(session, branch_id)
    after = None
    if cursor is not None:
        instant, row_id = decode_cursor(cursor)
        after = (instant.date(), row_id)
    rows = await queries.closed_days_page(session, branch_id, first, last, after, limit)
    next_cursor = _position(rows[limit - 1]) if len(rows) > limit else None
    items = [ClosedDayOut.model_validate(row) for row in rows[:limit]]
    return ClosedDayList(items=items, next_cursor=next_cursor)


async def add_closed_day(session: AsyncSession, branch_id: str, body: ClosedDayIn) -> ClosedDayOut:
    """A manual closed day: today or later (branch-local), else 422 `day`; twice: 409."""
    branch = await queries.locked_branch(session, branch_id)
    if body.day < _local_today(branch):
        raise InvalidInput("lies in the past (branch-local date)", field="day")
    if await queries.closed_days_on(session, branch.id, [body.day]):
        raise Conflict("The branch is already closed on that day.", field="day")
    row = BranchClosedDay(branch_id=branch.id, day=body.day, name=body.name, source="manual")
    await queries.add_closed_days(session, [row])
    return ClosedDayOut.model_validate(row)


async def remove_closed_day(session: AsyncSession, branch_id: str, day: date) -> None:
    branch = await queries.locked_branch(session, branch_id)
    if not await queries.delete_closed_day(session, branch.id, day):
        raise NotFound("The branch is not closed on that day.")


async def import_holidays(
    session: AsyncSession, branch_id: str, body: HolidayImportIn
) -> HolidayImportOut:
    """Close the branch on the public holidays of a year; days already closed and holidays
    already past are skipped (a second import adds nothing)."""
    branch = await queries.locked_branch(session, branch_id)
    today = _local_today(branch)
    if body.year < today.year:
        raise InvalidInput(f"{body.year} lies in the past", field="year")
    if body.year > today.year + IMPORT_YEARS_AHEAD:
        raise InvalidInput(
            f"at most {IMPORT_YEARS_AHEAD} years ahead (up to {today.year + IMPORT_YEARS_AHEAD})",
            field="year",
        )
    found = public_holidays(body.country, body.subdivision, body.year)
    upcoming = {day: name for day, name in found.items() if day >= today}
    existing = {row.day for row in await queries.closed_days_on(session, branch.id, upcoming)}
    rows = [
        BranchClosedDay(branch_id=branch.id, day=day, name=name, source="holidays")
        for day, name in upcoming.items()
        if day not in existing
    ]
    await queries.add_closed_days(session, rows)
    return HolidayImportOut(
        imported=len(rows),
        skipped_existing=len(existing),
        skipped_past=len(found) - len(upcoming),
        items=[ClosedDayOut.model_validate(row) for row in rows],
    )

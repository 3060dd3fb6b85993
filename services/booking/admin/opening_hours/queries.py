"""The SQL of a branch's opening hours and closed days (the session's company filter applies)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.errors import Conflict, NotFound
from shared.models import Branch, BranchClosedDay, BranchOpeningHours, Staff, WorkingHours


async def locked_branch(session: AsyncSession, branch_id: str) -> Branch:
    """The branch, locked for the transaction (MariaDB), so that opening hours and staff hours
    are checked against each other by one writer at a time; another company's: 404."""
    stmt = sa.select(Branch).where(Branch.id == branch_id).with_for_update()
    branch = (await session.execute(stmt)).scalar_one_or_none()
    if branch is None:
        raise NotFound("No such branch.")
    return branch


async def branch_of(session: AsyncSession, branch_id: str) -> Branch:
    branch = (
        await session.execute(sa.select(Branch).where(Branch.id == branch_id))
    ).scalar_one_or_none()
    if branch is None:
        raise NotFound("No such branch.")
    return branch


async def opening_hours(session: AsyncSession, branch_id: str) -> list[BranchOpeningHours]:
    stmt = (
        sa.select(BranchOpeningHours)
        .where(BranchOpeningHours.branch_id == branch_id)
        .order_by(BranchOpeningHours.weekday, BranchOpeningHours.start_time)
    )
    return list((await session.execute(stmt)).scalars())


async def replace_opening_hours(
    session: AsyncSession, branch_id: str, rows: Sequence[BranchOpeningHours]
) -> None:
    for old in await opening_hours(session, branch_id):
        await session.delete(old)
    await session.flush()
    session.add_all(rows)
    await session.flush()


async def staff_hours(session: AsyncSession, branch_id: str) -> list[tuple[str, WorkingHours]]:
    """Every working-hours row of the branch's staff, with the staff member's name."""
    stmt = (
        sa.select(Staff.name, WorkingHours)
        .join(Staff, Staff.id == WorkingHours.staff_id)
        .where(Staff.branch_id == branch_id)
        .order_by(Staff.name, WorkingHours.weekday, WorkingHours.start_time)
    )
    return [(name, row) for name, row in await session.execute(stmt)]


async def opening_hours_of_staff(
    session: AsyncSession, staff_id: str
) -> tuple[str | None, list[BranchOpeningHours]]:
    """The staff member's branch (locked) and its opening hours; (None, []) when unknown."""
    branch_id = await session.scalar(sa.select(Staff.branch_id).where(Staff.id == staff_id))
    if branch_id is None:
        return None, []
    await session.execute(sa.select(Branch.id).where(Branch.id == branch_id).with_for_update())
    return branch_id, await opening_hours(session, branch_id)


async def closed_days_page(
    session: AsyncSession,
    branch_id: str,
    first: date | None,
    last: date | None,
    after: tuple[date, str] | None,
    limit: int,
) -> list[BranchClosedDay]:
    """Up to `limit` + 1 closed days in (day, id) order after the position `after`."""
    conditions = [BranchClosedDay.branch_id == branch_id]
    if first is not None:
        conditions.append(BranchClosedDay.day >= first)
    if last is not None:
        conditions.append(BranchClosedDay.day <= last)
    if after is not None:
        day, row_id = after
        conditions.append(
            sa.or_(
                BranchClosedDay.day > day,
                sa.and_(BranchClosedDay.day == day, BranchClosedDay.id > row_id),
            )
        )
    stmt = (
        sa.select(BranchClosedDay)
        .where(*conditions)
        .order_by(BranchClosedDay.day, BranchClosedDay.id)
        .limit(limit + 1)
    )
    return list((await session.execute(stmt)).scalars())


async def closed_days_on(
    session: AsyncSession, branch_id: str, days: Iterable[date]
) -> list[BranchClosedDay]:
    stmt = sa.select(BranchClosedDay).where(
        BranchClosedDay.branch_id == branch_id, BranchClosedDay.day.in_(list(days))
    )
    return list((await session.execute(stmt)).scalars())


async def add_closed_days(session: AsyncSession, rows: Sequence[BranchClosedDay]) -> None:
    """Insert; a concurrent insert of the same (branch, day) is a 409 naming `day`."""
    session.add_all(rows)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("The branch is already closed on that day.", field="day") from exc


async def delete_closed_day(session: AsyncSession, branch_id: str, day: date) -> bool:
    rows = await closed_days_on(session, branch_id, [day])
    for row in rows:
        await session.delete(row)
    await session.flush()
    return bool(rows)

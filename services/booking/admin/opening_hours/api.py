"""Branch opening hours and closed days (/v1/admin/branches/{branch_id}/...), admin scope.

Weekdays are 0 = Monday .. 6 = Sunday (names accepted); times and dates are branch-local.
Another company's branch answers 404.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from services.booking.admin.opening_hours import service
from services.booking.admin.opening_hours.schemas import (
    ClosedDayIn,
    ClosedDayList,
    ClosedDayOut,
    HolidayImportIn,
    HolidayImportOut,
    OpeningHoursIn,
    OpeningHoursOut,
)
from shared.fields import Day
from shared.web.auth import AdminPrincipal
from shared.web.deps import Session
from shared.web.paging import MAX_LIMIT

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid API key (problem+json)"},
    403: {"description": "The key lacks the admin scope (problem+json)"},
    404: {"description": "No such branch in the caller's company (problem+json)"},
    409: {"description": "The branch is already closed on that day (problem+json)"},
    422: {
        "description": "Invalid input; `field` names the culprit (problem+json; codes "
        "validation_error, staff_hours_outside_opening_hours)"
    },
}
router = APIRouter(
    prefix="/v1/admin/branches/{branch_id}", tags=["admin", "opening hours"], responses=_PROBLEMS
)


@router.get("/opening-hours", response_model=OpeningHoursOut)
async def get_opening_hours(session: Session, _: AdminPrincipal, branch_id: str) -> OpeningHoursOut:
    """The branch's weekly opening hours (empty: none configured, staff hours alone count)."""
    return await service.get_opening_hours(session, branch_id)


@router.put("/opening-hours", response_model=OpeningHoursOut)
async def put_opening_hours(
    session: Session, _: AdminPrincipal, branch_id: str, body: OpeningHoursIn
) -> OpeningHoursOut:
    """Replace the week's opening hours; refused (422 `staff_hours_outside_opening_hours`)
    while staff working hours of the branch would lie outside them."""
    return await service.put_opening_hours(session, branch_id, body)


@router.get("/closed-days", response_model=ClosedDayList)
async def list_closed_days(
    session: Session,
    _: AdminPrincipal,
    branch_id: str,
    from_: Annotated[Day | None, Query(alias="from")] = None,
    to: Annotated[Day | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 200,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
) -> ClosedDayList:
    """The branch's closed days in date order, optionally from/to a date (inclusive)."""
    return await service.list_closed_days(session, branch_id, from_, to, limit, cursor)


@router.post("/closed-days", response_model=ClosedDayOut, status_code=201)
async def add_closed_day(
    session: Session, _: AdminPrincipal, branch_id: str, body: ClosedDayIn
) -> ClosedDayOut:
    """Close the branch all day on a date (today or later, branch-local)."""
    return await service.add_closed_day(session, branch_id, body)


@router.post("/closed-days/import", response_model=HolidayImportOut)
async def import_holidays(
    session: Session, _: AdminPrincipal, branch_id: str, body: HolidayImportIn
) -> HolidayImportOut:
    """Close the branch on a year's public holidays (e.g. country DE, subdivision BY)."""
    return await service.import_holidays(session, branch_id, body)


@router.delete("/closed-days/{day}", status_code=204, response_class=Response)
async def remove_closed_day(session: Session, _: AdminPrincipal, branch_id: str, day: date) -> None:
    """Open the branch again on that date."""
    await service.remove_closed_day(session, branch_id, day)

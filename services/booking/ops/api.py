"""Operator endpoints: failed bookings with their timelines, and today's overview (Bearer key
with the operator scope; always the key's company)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from services.booking.ops import service
from services.booking.ops.schemas import FailedBookingsOut, OverviewOut
from shared.db.types import utcnow
from shared.web.auth import OperatorPrincipal
from shared.web.deps import Session

router = APIRouter(prefix="/v1/ops", tags=["ops"])
Hours = Annotated[int, Query(ge=1, le=168, description="Look back this many hours (1-168)")]


@router.get("/failed-bookings", response_model=FailedBookingsOut)
async def failed_bookings(
    principal: OperatorPrincipal,
    session: Session,
    hours: Hours = 24,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> FailedBookingsOut:
    """Failed bookings of the last `hours`, newest first, `limit` a page: Cal.com sync
    failures and booking attempts that ended in an error, each with one time-ordered
    timeline. Pass `next_cursor` as `cursor` for the next page."""
    return await service.failed_bookings(
        session, principal.company_id, hours, utcnow(), limit=limit, cursor=cursor
    )


@router.get("/overview", response_model=OverviewOut)
async def get_overview(
    request: Request, principal: OperatorPrincipal, session: Session
) -> OverviewOut:
    """Today's booking success rate, sync and webhook backlogs, Cal.com breaker state and
    overdue callbacks of the key's company."""
    return await service.overview(session, principal.company_id, request.app.state.redis, utcnow())

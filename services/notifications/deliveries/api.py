"""`GET /v1/notifications/deliveries`: what was sent, to whom (masked), how, when, outcome."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.notifications.deliveries import service
from services.notifications.deliveries.schemas import Channel, DeliveriesOut, Status
from shared.fields import Id
from shared.web.auth import ReaderPrincipal
from shared.web.deps import Session

router = APIRouter(prefix="/v1/notifications", tags=["deliveries"])


@router.get("/deliveries", response_model=DeliveriesOut)
async def list_deliveries(
    principal: ReaderPrincipal,
    session: Session,
    appointment_id: Annotated[Id | None, Query()] = None,
    callback_id: Annotated[Id | None, Query()] = None,
    status: Annotated[Status | None, Query()] = None,
    channel: Annotated[Channel | None, Query()] = None,
    event_type: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> DeliveriesOut:
    """Deliveries of the company, newest first, `limit` a page; filter by appointment,
    callback, status... Pass `next_cursor` as `cursor` for the next page."""
    return await service.list_deliveries(
        session,
        appointment_id=appointment_id,
        callback_id=callback_id,
        status=status,
        channel=channel,
        event_type=event_type,
        limit=limit,
        cursor=cursor,
    )

"""REST API of the event catalogue."""

from __future__ import annotations

from fastapi import APIRouter

from services.notifications.catalog import service
from services.notifications.catalog.schemas import EventTypesOut
from shared.web.auth import ReaderPrincipal
from shared.web.deps import Session

events_router = APIRouter(prefix="/v1/notification-events", tags=["notification events"])


@events_router.get("", response_model=EventTypesOut)
async def list_event_types(principal: ReaderPrincipal, session: Session) -> EventTypesOut:
    """The 13 event types, with German and English labels and default channels."""
    return await service.list_event_types(session)

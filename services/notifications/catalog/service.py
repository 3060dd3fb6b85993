"""The event catalogue as the API answers it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.notifications.catalog import queries
from services.notifications.catalog.schemas import EventTypeOut, EventTypesOut


async def list_event_types(session: AsyncSession) -> EventTypesOut:
    """The active event types with their German and English labels and default channels."""
    return EventTypesOut(
        items=[
            EventTypeOut(
                event_type=row.event_type,
                label_de=row.event_label,
                label_en=row.event_label_en,
                category=row.event_category,
                default_channels=list(row.default_channels),
            )
            for row in await queries.active_mappings(session)
        ]
    )

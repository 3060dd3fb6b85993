"""Reads of the seeded event catalogue (`notification_event_mappings`)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import NotificationEventMapping

_M = NotificationEventMapping


async def active_mappings(session: AsyncSession) -> list[NotificationEventMapping]:
    """The active event types, by category, then name."""
    rows = await session.scalars(
        sa.select(_M).where(_M.is_active.is_(True)).order_by(_M.event_category, _M.event_type)
    )
    return list(rows)

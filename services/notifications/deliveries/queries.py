"""Reads of `notification_deliveries` for the deliveries API."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import NotificationDelivery

_D = NotificationDelivery


async def list_deliveries(
    session: AsyncSession,
    *,
    appointment_id: str | None,
    callback_id: str | None,
    status: str | None,
    channel: str | None,
    event_type: str | None,
    limit: int,
    after: tuple[datetime, str] | None = None,
) -> list[NotificationDelivery]:
    """The company's deliveries, newest first, each given filter applied; `after` is the
    (created_at, id) of the last row of the previous page."""
    statement = sa.select(_D).order_by(_D.created_at.desc(), _D.id.desc()).limit(limit)
    if after is not None:
        at, row_id = after
        statement = statement.where(
            sa.or_(_D.created_at < at, sa.and_(_D.created_at == at, _D.id < row_id))
        )
    for column, value in (
        (_D.appointment_id, appointment_id),
        (_D.callback_id, callback_id),
        (_D.status, status),
        (_D.channel, channel),
        (_D.event_type, event_type),
    ):
        if value is not None:
            statement = statement.where(column == value)
    return list((await session.scalars(statement)).all())

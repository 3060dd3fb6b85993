"""The deliveries API's use case: what was sent, to whom (masked), how, when, outcome."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.notifications.deliveries import queries
from services.notifications.deliveries.schemas import Channel, DeliveriesOut, DeliveryOut, Status
from shared.models import NotificationDelivery
from shared.web.paging import decode_cursor, encode_cursor


def delivery_out(row: NotificationDelivery) -> DeliveryOut:
    return DeliveryOut(
        id=row.id,
        event_id=row.event_id,
        event_type=row.event_type,
        channel=row.channel,
        recipient=row.recipient_masked,
        recipient_kind=row.recipient_kind,
        language=row.language,
        appointment_id=row.appointment_id,
        callback_id=row.callback_id,
        status=row.status,
        attempts=row.attempts,
        provider_message_id=row.provider_message_id,
        error=row.last_error,
        created_at=row.created_at,
        sent_at=row.sent_at,
    )


async def list_deliveries(
    session: AsyncSession,
    *,
    appointment_id: str | None = None,
    callback_id: str | None = None,
    status: Status | None = None,
    channel: Channel | None = None,
    event_type: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> DeliveriesOut:
    """A page of the company's deliveries, newest first, each given filter applied."""
    after = decode_cursor(cursor) if cursor is not None else None
    rows = await queries.list_deliveries(
        session,
        appointment_id=appointment_id,
        callback_id=callback_id,
        status=status,
        channel=channel,
        event_type=event_type,
        limit=limit + 1,
        after=after,
    )
    page = rows[:limit]
    more = len(rows) > limit
    next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if more else None
    return DeliveriesOut(items=[delivery_out(row) for row in page], next_cursor=next_cursor)

"""The deliveries API's use case: what was sent, to whom (masked), how, when, outcome."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.notifications.deliveries import queries
from services.notifications.deliveries.schemas import Channel, DeliveriesOut, DeliveryOut, Status
from shared.models import NotificationDelivery


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
) -> DeliveriesOut:
    """Deliveries of the company, newest first; filter by appointment, callback, status..."""
    rows = await queries.list_deliveries(
        session,
        appointment_id=appointment_id,
        callback_id=callback_id,
        status=status,
        channel=channel,
        event_type=event_type,
        limit=limit,
    )
    return DeliveriesOut(deliveries=[delivery_out(row) for row in rows])

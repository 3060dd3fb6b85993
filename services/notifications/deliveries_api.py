"""`GET /v1/notifications/deliveries`: what was sent, to whom (masked), how, when, outcome."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import BaseModel

from shared.fields import Id
from shared.models import NotificationDelivery
from shared.models.notification import CHANNELS, DELIVERY_STATUSES
from shared.web.auth import ReaderPrincipal
from shared.web.deps import Session

router = APIRouter(prefix="/v1/notifications", tags=["deliveries"])
_D = NotificationDelivery


class DeliveryOut(BaseModel):
    id: str
    event_id: str
    event_type: str
    channel: Literal["email", "sms", "whatsapp"]
    recipient: str
    recipient_kind: str
    language: str
    appointment_id: str | None
    callback_id: str | None
    status: Literal["sending", "sent", "retrying", "failed", "skipped"]
    attempts: int
    provider_message_id: str | None
    error: str | None
    created_at: datetime
    sent_at: datetime | None


class DeliveriesOut(BaseModel):
    deliveries: list[DeliveryOut]


def delivery_json(row: NotificationDelivery) -> dict[str, Any]:
    return {
        "id": row.id,
        "event_id": row.event_id,
        "event_type": row.event_type,
        "channel": row.channel,
        "recipient": row.recipient_masked,
        "recipient_kind": row.recipient_kind,
        "language": row.language,
        "appointment_id": row.appointment_id,
        "callback_id": row.callback_id,
        "status": row.status,
        "attempts": row.attempts,
        "provider_message_id": row.provider_message_id,
        "error": row.last_error,
        "created_at": row.created_at,
        "sent_at": row.sent_at,
    }


Status = Literal["sending", "sent", "retrying", "failed", "skipped"]
Channel = Literal["email", "sms", "whatsapp"]
assert set(Status.__args__) == set(DELIVERY_STATUSES)  # type: ignore[attr-defined]
assert set(Channel.__args__) == set(CHANNELS)  # type: ignore[attr-defined]


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
) -> dict[str, Any]:
    """Deliveries of the company, newest first; filter by appointment, callback, status..."""
    statement = sa.select(_D).order_by(_D.created_at.desc(), _D.id.desc()).limit(limit)
    for column, value in (
        (_D.appointment_id, appointment_id),
        (_D.callback_id, callback_id),
        (_D.status, status),
        (_D.channel, channel),
        (_D.event_type, event_type),
    ):
        if value is not None:
            statement = statement.where(column == value)
    rows = (await session.scalars(statement)).all()
    return {"deliveries": [delivery_json(row) for row in rows]}

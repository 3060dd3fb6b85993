"""Response bodies of the deliveries API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from shared.models.notification import CHANNELS, DELIVERY_STATUSES

Status = Literal["sending", "sent", "retrying", "failed", "skipped"]
Channel = Literal["email", "sms", "whatsapp"]
assert set(Status.__args__) == set(DELIVERY_STATUSES)  # type: ignore[attr-defined]
assert set(Channel.__args__) == set(CHANNELS)  # type: ignore[attr-defined]


class DeliveryOut(BaseModel):
    id: str
    event_id: str
    event_type: str
    channel: Channel
    recipient: str
    recipient_kind: str
    language: str
    appointment_id: str | None
    callback_id: str | None
    status: Status
    attempts: int
    provider_message_id: str | None
    error: str | None
    created_at: datetime
    sent_at: datetime | None


class DeliveriesOut(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page"
    )

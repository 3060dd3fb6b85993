"""The operators' event views (pydantic, for the OpenAPI document and the event API)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

EventStatus = Literal["pending", "processing", "processed", "failed", "ignored"]
Source = Literal["calcom", "retell"]


class EventItem(BaseModel):
    id: str
    source: Source
    event_type: str
    status: EventStatus
    attempts: int
    error_message: str | None
    created_at: str
    processed_at: str | None
    correlation_id: str | None


class EventDetail(EventItem):
    company_id: str | None = Field(description="NULL for a Retell event no company claims")
    payload: dict[str, Any]  # the sender's JSON as stored: its shape is the vendor's


class EventList(BaseModel):
    items: list[EventItem]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next (older) page; null on the last page"
    )

"""Answers of the webhooks service (pydantic, for the OpenAPI document and the event views)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

EventStatus = Literal["pending", "processing", "processed", "failed", "ignored"]
Source = Literal["calcom", "retell"]


class Accepted(BaseModel):
    """202: stored for the first time; the worker processes it."""

    status: Literal["accepted"]
    event_id: str = Field(description="The stored event's id (`GET /v1/webhooks/events/{id}`)")


class Repeated(BaseModel):
    """200: the same event was delivered before; nothing is stored or processed again."""

    status: Literal["already_processed", "in_progress"]
    event_id: str


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
    payload: dict[str, Any]


class EventList(BaseModel):
    items: list[EventItem]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next (older) page; null on the last page"
    )

"""Response bodies of the event catalogue API."""

from __future__ import annotations

from pydantic import BaseModel, Field


class EventTypeOut(BaseModel):
    event_type: str
    label_de: str
    label_en: str
    category: str
    default_channels: list[str]


class EventTypesOut(BaseModel):
    items: list[EventTypeOut]
    next_cursor: str | None = Field(
        default=None, description="Always null: the catalogue is small and answered in one page"
    )

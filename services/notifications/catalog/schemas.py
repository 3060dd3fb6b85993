"""Response bodies of the event catalogue API."""

from __future__ import annotations

from pydantic import BaseModel


class EventTypeOut(BaseModel):
    event_type: str
    label_de: str
    label_en: str
    category: str
    default_channels: list[str]


class EventTypesOut(BaseModel):
    events: list[EventTypeOut]

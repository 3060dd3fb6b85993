"""Request and response bodies of the notification config API."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body
from pydantic import BaseModel, Field

# The body is the level's sparse config document itself: its keys are the data.
ConfigBody = Annotated[
    dict[str, Any],
    Body(
        description='The level\'s keys, e.g. {"enabled": false} or {"recipients": ["customer", '
        '{"address": "frontdesk@example.com"}]}; staff may set only notify_staff and language.'
    ),
]


class ConfigOut(BaseModel):
    level: str
    entity_id: str
    event_type: str
    channel: str
    config: dict[str, Any]  # the stored document as it is
    updated_at: str


class ConfigListOut(BaseModel):
    items: list[ConfigOut]
    next_cursor: str | None = Field(
        default=None, description="Always null: a company's configs are few, one page"
    )


class EffectiveOut(BaseModel):
    event_type: str
    channel: str
    config: dict[str, Any]  # the merged document as it is
    sources: dict[str, str] = Field(description="The level each key came from (or 'default')")
    chain: dict[str, str | None]

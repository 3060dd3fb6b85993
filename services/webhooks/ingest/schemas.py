"""Answers of the two ingestion endpoints (pydantic, for the OpenAPI document)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Accepted(BaseModel):
    """202: stored for the first time; the worker processes it."""

    status: Literal["accepted"]
    event_id: str = Field(description="The stored event's id (`GET /v1/webhooks/events/{id}`)")


class Repeated(BaseModel):
    """200: the same event was delivered before; nothing is stored or processed again."""

    status: Literal["already_processed", "in_progress"]
    event_id: str

"""Notifications service (:8004): notification configuration, event types, delivery."""

from __future__ import annotations

from fastapi import FastAPI

from shared.app import create_app
from shared.config import Settings


def create(settings: Settings | None = None) -> FastAPI:
    return create_app(
        service="notifications",
        title="Notifications service",
        description="Who is told what, over which channel; the 13 event types; deliveries.",
        settings=settings,
    )

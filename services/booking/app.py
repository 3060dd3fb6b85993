"""Booking service (:8001): agent functions, availability, appointments, callbacks, admin."""

from __future__ import annotations

from fastapi import FastAPI

from services.booking.admin_api import router as admin_router
from services.booking.api import router as api_router
from shared.app import create_app
from shared.config import Settings


def create(settings: Settings | None = None) -> FastAPI:
    return create_app(
        service="booking",
        title="Booking service",
        description="Availability, appointments, agent functions, callbacks and tenant admin.",
        routers=[api_router, admin_router],
        settings=settings,
    )

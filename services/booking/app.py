"""Booking service (:8001): agent functions, availability, appointments, callbacks, admin."""

from __future__ import annotations

from fastapi import FastAPI

from services.booking.admin_api import router as admin_router
from services.booking.api import router as api_router
from services.booking.callbacks_api import router as callbacks_router
from services.booking.policy_client import PolicyClient
from services.booking.retell_api import router as retell_router
from shared.app import create_app
from shared.config import Settings


async def _start_policy_client(app: FastAPI) -> None:
    settings = app.state.settings
    app.state.policy = PolicyClient(
        settings.policy_service_url, settings.service_api_key, settings.policy_timeout_s
    )


async def _stop_policy_client(app: FastAPI) -> None:
    await app.state.policy.aclose()


def create(settings: Settings | None = None) -> FastAPI:
    return create_app(
        service="booking",
        title="Booking service",
        description="Availability, appointments, agent functions, callbacks and tenant admin.",
        routers=[retell_router, api_router, callbacks_router, admin_router],
        settings=settings,
        on_startup=[_start_policy_client],
        on_shutdown=[_stop_policy_client],
    )

"""Booking service (:8001): agent functions, availability, appointments, callbacks, admin."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from services.booking.admin.api import router as admin_router
from services.booking.admin.customers.api import router as customer_data_router
from services.booking.admin.opening_hours.api import router as opening_hours_router
from services.booking.agent.api import router as retell_router
from services.booking.appointments.api import router as api_router
from services.booking.appointments.policy_client import PolicyClient
from services.booking.calcom.availability import CalcomAccess, using
from services.booking.callbacks.api import router as callbacks_router
from services.booking.customers.api import router as customers_router
from services.booking.ops.api import router as ops_router
from services.booking.ops.page import router as ops_page_router
from shared.config import Settings
from shared.observability.tracing import outbound_limits
from shared.security.outbound import outbound_client
from shared.web.app import create_app


async def _start_policy_client(app: FastAPI) -> None:
    settings = app.state.settings
    app.state.policy = PolicyClient(
        settings.policy_service_url, settings.service_api_key, settings.policy_timeout_s
    )


async def _stop_policy_client(app: FastAPI) -> None:
    await app.state.policy.aclose()


async def _start_calcom(app: FastAPI) -> None:
    """One pooled HTTP client for Cal.com (each call passes its own timeout)."""
    app.state.calcom_http = outbound_client(
        app.state.settings, timeout=httpx.Timeout(10.0), limits=outbound_limits(50)
    )
    app.state.calcom_access = CalcomAccess(
        settings=app.state.settings,
        http=app.state.calcom_http,
        redis=app.state.redis,
        db=app.state.db,
    )


async def _stop_calcom(app: FastAPI) -> None:
    await app.state.calcom_access.drain()
    await app.state.calcom_http.aclose()


class CalcomAccessMiddleware:
    """Gives every request the app's Cal.com access, so that availability deep in the domain
    (API, agent functions, any-staff choice) can consult Cal.com without threading clients
    through every signature."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        access = getattr(scope["app"].state, "calcom_access", None)
        with using(access):
            await self.app(scope, receive, send)


def create(settings: Settings | None = None) -> FastAPI:
    app = create_app(
        service="booking",
        title="Booking service",
        description="Availability, appointments, agent functions, callbacks and tenant admin.",
        routers=[
            retell_router,
            api_router,
            callbacks_router,
            customers_router,
            admin_router,
            customer_data_router,
            opening_hours_router,
            ops_router,
            ops_page_router,
        ],
        settings=settings,
        on_startup=[_start_policy_client, _start_calcom],
        on_shutdown=[_stop_calcom, _stop_policy_client],
    )
    app.add_middleware(CalcomAccessMiddleware)
    return app

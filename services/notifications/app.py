"""Notifications service (:8004): notification configuration, event types, templates, delivery."""

from __future__ import annotations

from fastapi import FastAPI

from services.notifications.catalog import api as catalog_api
from services.notifications.configs import api as configs_api
from services.notifications.configs.queries import NAMESPACE
from services.notifications.deliveries import api as deliveries_api
from services.notifications.templates import api as templates_api
from shared.config import Settings
from shared.hierarchy.cache import ConfigCache
from shared.web.app import create_app


async def _start_cache(app: FastAPI) -> None:
    app.state.notification_cache = ConfigCache(app.state.redis, NAMESPACE)


def create(settings: Settings | None = None) -> FastAPI:
    return create_app(
        service="notifications",
        title="Notifications service",
        description="Who is told what, over which channel; the 13 event types; templates; "
        "deliveries.",
        routers=[
            catalog_api.events_router,
            configs_api.router,
            templates_api.router,
            deliveries_api.router,
        ],
        on_startup=[_start_cache],
        settings=settings,
    )

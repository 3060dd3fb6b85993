"""Policy service (:8002): hierarchical cancellation/reschedule policies and their evaluation."""

from __future__ import annotations

from fastapi import FastAPI

from services.policy.api import router
from services.policy.lean_routes import HANDLERS
from services.policy.service import NAMESPACE
from shared.config import Settings
from shared.hierarchy.cache import ConfigCache
from shared.web.app import create_app


async def _start_cache(app: FastAPI) -> None:
    app.state.policy_cache = ConfigCache(app.state.redis, NAMESPACE)


def create(settings: Settings | None = None) -> FastAPI:
    return create_app(
        service="policy",
        title="Policy service",
        description="Cancellation and reschedule policies: configuration and evaluation.",
        routers=[router],
        settings=settings,
        on_startup=[_start_cache],
        lean_routes=HANDLERS,
    )

"""Webhooks service (:8003): Cal.com and Retell webhook ingestion (verify, store, ack, queue)."""

from __future__ import annotations

from fastapi import FastAPI

from services.webhooks.events.api import events
from services.webhooks.ingest.api import ingestion
from services.webhooks.ingest.lean_routes import HANDLERS
from services.webhooks.ingest.service import SECRET_TTL_S, SecretCache
from shared.config import Settings
from shared.web.app import create_app


async def _start(app: FastAPI) -> None:
    # Per process: a replica honours a changed Cal.com secret within the TTL (at most 30 s).
    ttl = min(app.state.settings.auth_cache_ttl_s, SECRET_TTL_S)
    app.state.calcom_secrets = SecretCache(ttl)


def create(settings: Settings | None = None) -> FastAPI:
    return create_app(
        service="webhooks",
        title="Webhooks service",
        description="Receives Cal.com and Retell webhooks, stores them once, processes them later.",
        routers=[ingestion, events],
        settings=settings,
        on_startup=[_start],
        lean_routes=HANDLERS,
    )

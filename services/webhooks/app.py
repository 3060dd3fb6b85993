"""Webhooks service (:8003): Cal.com and Retell webhook ingestion (verify, store, ack, queue)."""

from __future__ import annotations

from fastapi import FastAPI

from shared.app import create_app
from shared.config import Settings


def create(settings: Settings | None = None) -> FastAPI:
    return create_app(
        service="webhooks",
        title="Webhooks service",
        description="Receives Cal.com and Retell webhooks, stores them once, processes them later.",
        settings=settings,
    )

"""Policy service (:8002): hierarchical cancellation/reschedule policies and their evaluation."""

from __future__ import annotations

from fastapi import FastAPI

from shared.app import create_app
from shared.config import Settings


def create(settings: Settings | None = None) -> FastAPI:
    return create_app(
        service="policy",
        title="Policy service",
        description="Cancellation and reschedule policies: configuration and evaluation.",
        settings=settings,
    )
